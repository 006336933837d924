// What every view of the web page uses: building elements, formatting numbers, which view the address names, the error
// box, reading the service's JSON, and pictures with boxes drawn over them.

// The explanation card's row colours (ExplanationCard.RowColours), so a box has one colour on the page and the card.
export const BOX_COLOURS = ["#e6194b", "#0074d4", "#28a03c", "#f58200", "#911eb4", "#00aaaa", "#c21bb0", "#787800", "#8c4614", "#141e6e"];

/** WCAG's relative luminance of a colour written #rrggbb. */
function luminance(colour) {
  const channel = (i) => {
    const c = parseInt(colour.slice(1 + 2 * i, 3 + 2 * i), 16) / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * channel(0) + 0.7152 * channel(1) + 0.0722 * channel(2);
}

/** The text colour for a box's number tag on <colour>: white or the page's ink, whichever reads better (at least 4.5:1 for every box colour). */
export const tagInk = (colour) => ((1.05 / (luminance(colour) + 0.05)) >= (luminance(colour) + 0.05) / (luminance("#1f2328") + 0.05) ? "#fff" : "#1f2328");

export const $ = (id) => document.getElementById(id);

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "style") node.setAttribute("style", value);
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

export const fmt = (value) => Number(value).toFixed(2);
// Weights get a third decimal: a weight of 1.004 shown as 1.00 would make "5.36 x 1.00 = 5.38" look wrong.
export const fmtWeight = (value) => Number(value).toFixed(3);
export const signed = (value) => (value < 0 ? `\u2212 ${fmt(-value)}` : `+ ${fmt(value)}`);
/** A probability in percent to one decimal; one short of certainty, or above none, is not rounded to it (as on the card). */
export function percent(p) {
  const value = p * 100;
  if (value >= 99.95 && value < 100) return ">99.9%";
  if (value > 0 && value < 0.05) return "<0.1%";
  return value.toFixed(1) + "%";
}

// ---------------------------------------------------------------- views

export const VIEWS = ["classify", "gallery", "training"];

export const currentView = () => (VIEWS.includes(location.hash.slice(1)) ? location.hash.slice(1) : "classify");

// ---------------------------------------------------------------- errors

// view -> { title, detail }: a failure of a view not shown, kept until it is shown again.
const pendingErrors = new Map();

/**
 * Turns a failed response into a readable sentence: the problem's detail, else its title, else the status; with the
 * status and the seconds of a Retry-After header (429, 503), for callers that try again.
 */
export async function problemMessage(response) {
  let title = `The service answered ${response.status} ${response.statusText}`.trim();
  let detail = "";
  let type = null;
  const retryAfter = Number(response.headers.get("Retry-After")) || null;
  try {
    const body = await response.json();
    if (body && typeof body === "object") {
      title = body.title || title;
      detail = body.detail || "";
      type = body.type || null;
    }
  } catch {
    // Not JSON (a proxy's error page): the status line says it all.
  }
  return { title, detail, type, status: response.status, retryAfter };
}

/**
 * Shows any failure in the error box: a problem made by problemMessage (or the page's own, with a title and detail),
 * or an exception (an answer that was not the JSON expected), under <fallbackTitle>. With <view>, a failure that
 * arrives while another view is shown waits until that view is shown again.
 */
export function showProblem(problem, fallbackTitle = "Something went wrong", view = null) {
  if (!problem || typeof problem !== "object" || problem instanceof Error) {
    showError(fallbackTitle, String((problem && problem.message) || problem), view);
    return;
  }
  const retry = problem.retryAfter ? ` Try again in ${problem.retryAfter} s.` : "";
  showError(problem.title || fallbackTitle, `${problem.detail || ""}${retry}`.trim(), view);
}

export function showError(title, detail, view = null) {
  if (view && view !== currentView()) {
    pendingErrors.set(view, { title, detail });
    return;
  }
  const box = $("error");
  box.replaceChildren(el("strong", { text: title }), detail ? el("span", { text: detail }) : null);
  box.hidden = false;
  // Screen readers hear it (role=alert); on a phone the box is often above the part of the page in view.
  box.scrollIntoView({ block: "nearest" });
}

/** Shows the failure that came for <view> while another view was shown, if any. */
export function showPendingError(view) {
  const pending = pendingErrors.get(view);
  if (!pending) return;
  pendingErrors.delete(view);
  showError(pending.title, pending.detail);
}

/**
 * Runs <work> with <button> held busy: a second press meanwhile does nothing (a double click would send twice). Held
 * with aria-disabled, not disabled: a disabled button loses the keyboard's focus.
 */
export async function whileBusy(button, work) {
  if (button.getAttribute("aria-disabled") === "true") return;
  button.setAttribute("aria-disabled", "true");
  try {
    await work();
  } finally {
    button.removeAttribute("aria-disabled");
  }
}

export function clearError() {
  $("error").hidden = true;
  $("error").replaceChildren();
}

/** Whether a failure is the service's problem of this kind (urn:protopnet:problem:<kind>). */
export const isProblem = (problem, kind) => Boolean(problem) && typeof problem.type === "string" && problem.type.endsWith(`:${kind}`);

/** fetch, answering the service's response when it succeeded; otherwise throwing the problem (or that it cannot be reached). */
export async function fetchOk(url, init) {
  let response;
  try {
    response = await fetch(url, init);
  } catch (error) {
    throw { title: "The service cannot be reached", detail: String(error.message || error) };
  }
  if (!response.ok) throw await problemMessage(response);
  return response;
}

export async function getJson(url) {
  return (await fetchOk(url, { headers: { Accept: "application/json" } })).json();
}

/**
 * fetchOk with the API key kept in sessionStorage under <storageKey> (the admin key, or the classify key where the
 * service has one): a 401 or 403 forgets the key and calls <askForKey>, then throws the problem.
 */
export async function fetchWithKey(url, init, storageKey, askForKey) {
  const key = sessionStorage.getItem(storageKey);
  try {
    return await fetchOk(url, key ? { ...init, headers: { ...(init.headers || {}), "X-Api-Key": key } } : init);
  } catch (problem) {
    if (problem.status === 401 || problem.status === 403) {
      sessionStorage.removeItem(storageKey);
      askForKey();
    }
    // The service's details speak of headers, to programs; the page asks a person for the key in its form.
    if (isProblem(problem, "api-key-missing")) throw { ...problem, detail: "Enter the service's API key in the form on this page." };
    if (isProblem(problem, "api-key-rejected")) throw { ...problem, detail: "The key given is not this service's key: enter it again." };
    throw problem;
  }
}

// ---------------------------------------------------------------- pictures

/** An image with boxes drawn over it; boxes are in pixels of an image of width x height. */
export function boxedImage(src, alt, width, height, boxes, className) {
  const wrapper = el("div", { class: "boxed" }, el("img", { src, alt, class: className }));
  for (const box of boxes) {
    if (!box.box) continue;
    const style = [
      `--box: ${box.colour}`,
      `left: ${(100 * box.box.x) / width}%`, `top: ${(100 * box.box.y) / height}%`,
      `width: ${(100 * box.box.width) / width}%`, `height: ${(100 * box.box.height) / height}%`,
    ].join("; ");
    const div = el("div", { class: "box", style, "aria-hidden": "true" });
    if (box.tag) div.append(el("span", { class: "tag", text: box.tag, style: `color: ${tagInk(box.colour)}` }));
    wrapper.append(div);
  }
  return wrapper;
}
