// Screenshots of the web page for the README: uploads an image on the running service's page and saves the result.
// Run by scripts/docs_screenshots.sh with the Node.js and playwright-core that the Microsoft.Playwright package ships.
"use strict";
const playwright = require(process.env.PLAYWRIGHT_PACKAGE);

(async () => {
  const browser = await playwright.chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
    await page.goto(process.env.SERVICE_URL);
    await page.waitForFunction(() => document.querySelectorAll("#model option").length > 0);
    await page.setInputFiles("#file", process.env.IMAGE);
    await page.waitForFunction(() => !document.getElementById("result").hidden
      && [...document.querySelectorAll("#result img")].every((i) => i.complete && i.naturalWidth > 0), null, { timeout: 60000 });
    await page.screenshot({ path: process.env.PAGE_PNG, fullPage: true });
  } finally {
    await browser.close();
  }
})().catch((error) => { console.error(error); process.exit(1); });
