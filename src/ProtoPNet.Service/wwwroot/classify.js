// The classify view: an image chosen, dropped, pasted or picked from the model's examples is sent to POST /classify,
// and the answer is drawn: the prediction, and for each prototype "this part of your image looks like that part of a
// training image", with its points.
import { $, el, fmt, fmtWeight, signed, percent, BOX_COLOURS, boxedImage, fetchOk, fetchWithKey, showProblem, clearError, whileBusy } from "./page.js";
import { selectedModel, prototypesOf } from "./models.js";
import { showClassInGallery } from "./gallery.js";

const state = {
  lastFile: null,      // the last image classified, re-sent when the model or count changes
  lastName: null,      // what the status calls it: its file name, or the example's name
  lastPixels: null,    // its width x height as the browser decodes it (pixelCount), decoded once
  objectUrl: null,
  request: 0,          // a counter, so a slow answer never overwrites a newer one
  explainClass: null,  // the class chosen among the top classes to explain, or null for the predicted one
  focusClass: null,    // the class whose button was pressed: it keeps the focus once the answer is drawn again
  shown: null,         // the explanation shown: { file, query, name }, for "Save as a picture"
  cardUrl: null,       // the last card saved, kept until the next one
};

// ---------------------------------------------------------------- examples

function showExamples() {
  const model = selectedModel();
  const examples = (model && model.examples) || [];
  const list = $("example-list");
  list.replaceChildren(...examples.map((example) => {
    const name = example.label ? `Example ${example.index + 1} (${example.label})` : `Example ${example.index + 1}`;
    // The name begins with the words shown on the button (its label), as a spoken command would say them.
    const spoken = example.label ? `${example.label}, example ${example.index + 1}` : `Example ${example.index + 1}`;
    const button = el("button", { type: "button", "data-url": example.url, "aria-label": spoken },
      el("img", { src: example.url, alt: "" }),
      el("span", { text: example.label || `#${example.index + 1}` }));
    button.addEventListener("click", () => classifyExample(example.url, name));
    return el("li", {}, button);
  }));
  $("examples").hidden = examples.length === 0;
}

async function classifyExample(url, name) {
  clearError();
  // Counted from the click, not once downloaded: an image chosen meanwhile is newer and wins.
  const request = ++state.request;
  try {
    const response = await fetchOk(url);
    const blob = await response.blob();
    if (request !== state.request) return;
    await classify(new File([blob], name + ".png", { type: blob.type || "image/png" }), name);
  } catch (problem) {
    if (request !== state.request) return;
    showProblem(problem, "The example cannot be loaded", "classify");
  }
}

// ---------------------------------------------------------------- classify

const MAX_HEATMAP_PIXELS = 4_000_000;

// The classify key (only where the service has Security:ClassifyApiKey): in sessionStorage, like the admin key.
const CLASSIFY_KEY_STORAGE = "protopnet.classifyApiKey";

/**
 * POSTs one image to a classify endpoint (/classify, /classify/card) with the query, and answers its response when it
 * succeeded; otherwise throws the problem. With Security:ClassifyApiKey the service wants the key: the page asks for it
 * once a 401 or 403 says so.
 */
function postImage(path, query, file) {
  const form = new FormData();
  form.append("image", file, file.name || "image");
  return fetchWithKey(`${path}?${query}`, { method: "POST", body: form }, CLASSIFY_KEY_STORAGE, askForClassifyKey);
}

function askForClassifyKey() {
  $("classify-key-form").hidden = false;
  $("classify-key").focus();
}

/** The "Prototypes to show" field as a count from 1 to 10 (3 when empty), written back so that it shows what is sent. */
function prototypesToShow() {
  const field = $("top-prototypes");
  const asked = parseInt(field.value, 10);
  const count = Number.isNaN(asked) ? 3 : Math.min(10, Math.max(1, asked));
  field.value = String(count);
  return count;
}

/** The image's width x height as the browser decodes it, or null when it cannot (TIFF; or not an image, and the service says why). */
async function pixelCount(file) {
  try {
    const bitmap = await createImageBitmap(file);
    const count = bitmap.width * bitmap.height;
    bitmap.close();
    return count;
  } catch {
    return null;
  }
}

async function classify(file, name = file && file.name) {
  const model = selectedModel();
  if (!file) return;
  const isNew = file !== state.lastFile;
  if (isNew) {
    state.explainClass = null;   // a new image: why its own prediction
    state.lastPixels = pixelCount(file);
    state.lastName = name || "the image";
  }
  state.lastFile = file;
  const request = ++state.request;
  clearError();
  $("status").textContent = `Classifying ${state.lastName}...`;

  const topPrototypes = prototypesToShow();
  // Heatmaps come back at the decoded size, up to 4 megapixels each; for large photos they would make the answer tens of megabytes long.
  const pixels = await state.lastPixels;
  const heatmaps = pixels === null || pixels <= MAX_HEATMAP_PIXELS;
  const query = new URLSearchParams({ topPrototypes: String(topPrototypes), topClasses: "3", heatmaps: heatmaps ? "png" : "none" });
  if (model) query.set("model", model.name);
  if (state.explainClass !== null) query.set("explainClass", String(state.explainClass));
  // "Check this explanation": the service runs the image again with each prototype's box filled (one extra network run).
  const verify = $("verify").checked;
  if (verify) query.set("verify", "true");

  try {
    const result = await (await postImage("/classify", query, file)).json();
    // The training images' boxes come from the prototype listing; without it the answer is still shown.
    let prototypes = null;
    let listingProblem = null;
    try {
      prototypes = await prototypesOf(result.model.name, result.model.version);
    } catch (problem) {
      listingProblem = problem;
    }
    if (request !== state.request) return;
    if (state.objectUrl) URL.revokeObjectURL(state.objectUrl);
    state.objectUrl = URL.createObjectURL(file);
    // The service reads formats a browser may not show (TIFF): then the boxes go on a blank of the image's size.
    const shown = await canShow(state.objectUrl);
    if (request !== state.request) return;
    renderResult(result, prototypes, shown ? state.objectUrl : blankOfSize(result.image.width, result.image.height));
    // The card of this answer: the same query, of the model version that answered (a card draws its heatmaps anyway).
    const cardQuery = new URLSearchParams(query);
    cardQuery.set("model", `${result.model.name}@${result.model.version}`);
    cardQuery.delete("heatmaps");
    state.shown = { file, query: cardQuery, name: `${(file.name || "image").replace(/\.[^.]*$/, "")} explained by ${result.model.name}.png` };
    // The status is what a screen reader announces: the answer first.
    $("status").textContent = `${result.prediction.label}, ${percent(result.prediction.probability)}. Done in ${fmt(result.timingsMs.total)} ms` +
      (result.timingsMs.verify !== undefined ? ` (checking the boxes took ${fmt(result.timingsMs.verify)} ms).` : ".") +
      (heatmaps ? "" : " Heatmaps are left out for images over 4 megapixels.") +
      (shown ? "" : " This browser cannot show the file's format, so the boxes are drawn on a blank of its size; the heatmaps show the image.");
    if (isNew) showResultInView();
    if (listingProblem) showProblem({ ...listingProblem, title: "The training images' boxes cannot be shown",
      detail: listingProblem.detail || listingProblem.title || String(listingProblem.message || listingProblem) }, undefined, "classify");
  } catch (problem) {
    if (request !== state.request) return;
    $("result").hidden = true;
    state.shown = null;
    $("status").textContent = "";
    // What is wrong with the image is said of it by name.
    const ofTheImage = problem && typeof problem.type === "string" && /:(image-|unsupported-media-type$)/.test(problem.type);
    showProblem(ofTheImage ? { ...problem, title: `${state.lastName}: ${problem.title}` } : problem, undefined, "classify");
  }
}

/**
 * A new image's answer is brought into view when its top is not (on a phone it comes below the examples); one drawn
 * again (another model, count, check or top class) stays where the control that asked for it is.
 */
function showResultInView() {
  const top = $("result").getBoundingClientRect().top;
  if (top < 0 || top > window.innerHeight * 0.75) $("result").scrollIntoView({ block: "start" });
}

/** "Save as a picture": the explanation shown, drawn by the service as one PNG (POST /classify/card), saved as a file. */
async function saveCard() {
  const shown = state.shown;
  if (!shown) return;
  await whileBusy($("save-card"), async () => {
    clearError();
    try {
      const card = await (await postImage("/classify/card", shown.query, shown.file)).blob();
      if (state.cardUrl) URL.revokeObjectURL(state.cardUrl);
      state.cardUrl = URL.createObjectURL(card);
      const link = el("a", { href: state.cardUrl, download: shown.name, hidden: "" });
      document.body.append(link);
      link.click();
      link.remove();
    } catch (problem) {
      showProblem(problem, "The picture cannot be made", "classify");
    }
  });
}

/** Whether the browser can show the picture at url (none shows TIFF, which the service reads). */
function canShow(url) {
  return new Promise((resolve) => {
    const probe = new Image();
    probe.onload = () => resolve(true);
    probe.onerror = () => resolve(false);
    probe.src = url;
  });
}

/** A grey picture of width x height, to draw boxes on when the upload itself cannot be shown. */
function blankOfSize(width, height) {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">` +
    `<rect width="100%" height="100%" fill="#d8d8d8"/></svg>`;
  return `data:image/svg+xml,${encodeURIComponent(svg)}`;
}

function renderResult(result, prototypes, imageUrl) {
  const { prediction, explanation } = result;
  const { width, height } = result.image;
  const colour = (i) => BOX_COLOURS[i % BOX_COLOURS.length];

  // Unfamiliar: the image's parts are further from every prototype than the bundle's calibrated threshold allows.
  const unfamiliar = result.unfamiliar === true;
  $("unfamiliar-notice").hidden = !unfamiliar;
  if (unfamiliar) {
    const share = result.unfamiliarity.calibration?.targetShare;
    $("unfamiliar-detail").textContent = (share
      ? `Its closest match to any prototype is weaker than for all but ${percent(share)} of the images the model's threshold was set on, `
      : "Its closest match to any prototype is weaker than the model's threshold, ") +
      "so the prediction below is only the least bad guess.";
  }
  // The bundle's contrast step turned a light-ground photo into light on dark before the network saw it.
  $("inverted-note").hidden = result.preprocessing?.inverted !== true;
  $("prediction").textContent = prediction.label;
  $("prediction-detail").textContent =
    `${percent(prediction.probability)} probability, by ${result.model.name} (version ${result.model.version})`;

  const overview = boxedImage(imageUrl, `Your image, with ${explanation.prototypes.length} boxed parts that the model matched to prototypes`,
    width, height, explanation.prototypes.map((p, i) => ({ box: p.box, colour: colour(i), tag: String(i + 1) })));
  overview.id = "overview-boxed";
  $("overview-boxed").replaceWith(overview);

  // Each top class is a button: pressed, the image is explained for that class ("why not this one?").
  $("top-classes").replaceChildren(...result.topClasses.map((c) => {
    const choose = el("button", { type: "button", class: "link-button", "data-class": String(c.classIndex),
      "aria-pressed": String(c.classIndex === explanation.classIndex), text: c.label });
    const asked = c.classIndex === prediction.classIndex ? null : c.classIndex;   // the predicted class is the default
    choose.addEventListener("click", () => explainAnotherClass(asked, c.classIndex));
    return el("li", { class: c.classIndex === prediction.classIndex ? "predicted" : "" },
      choose,
      el("span", { text: percent(c.probability) }),
      el("span", { class: "bar", "aria-hidden": "true" }, el("span", { style: `width: ${(100 * c.probability).toFixed(1)}%` })));
  }));
  if (state.focusClass !== null) {
    const pressed = $("top-classes").querySelector(`button[data-class="${state.focusClass}"]`);
    if (pressed) pressed.focus();
    state.focusClass = null;
  }

  $("why-title").textContent = explanation.classIndex === prediction.classIndex
    ? `Why ${explanation.label}? This looks like that:`
    : `Why ${explanation.label}? (not the prediction) This looks like that:`;

  // Without the prototype listing (it could not be fetched) the training images are shown without their boxes.
  const input = prototypes ? prototypes.input : { width: 1, height: 1 };
  $("prototype-rows").replaceChildren(...explanation.prototypes.map((p, i) => {
    const listing = prototypes ? prototypes.byIndex.get(p.prototypeIndex) : null;
    const sourceBox = listing && listing.source ? listing.source.box : null;
    const activation = listing ? listing.pictures.activation : null;
    const rowColour = colour(i);
    const figures = el("div", { class: "figures" },
      el("figure", {},
        boxedImage(imageUrl, `Your image, with the part that looks like prototype ${p.prototypeIndex} boxed`, width, height,
          [{ box: p.box, colour: rowColour }], "upload"),
        el("figcaption", { text: "This part of your image" })),
      p.heatmap ? el("figure", {},
        boxedImage(p.heatmap, `Heatmap: where your image is similar to prototype ${p.prototypeIndex}, red is most similar`, width, height,
          [{ box: p.box, colour: rowColour }], "heatmap"),
        el("figcaption", { text: "How similar each place is (heatmap)" })) : null,
      el("figure", {},
        el("img", { src: p.prototypeImage, class: "patch pixelated", alt: `Prototype ${p.prototypeIndex} of class ${p.label}: a patch of a training image` }),
        el("figcaption", { text: `looks like that: prototype ${p.prototypeIndex}` })),
      el("figure", {},
        boxedImage(p.prototypeSource, `The training image prototype ${p.prototypeIndex} comes from, with the patch boxed`,
          input.width, input.height, [{ box: sourceBox, colour: rowColour }], "source"),
        el("figcaption", {},
          "from this training image",
          activation ? el("span", {}, " (", el("a", { href: activation, target: "_blank", rel: "noopener" }, "activation"), ")") : null)));
    const points = el("p", { class: "points" },
      `similarity ${fmt(p.similarity)} \u00d7 weight ${fmtWeight(p.weight)} = `,
      el("strong", { text: `${fmt(p.contribution)} points` }));
    // The prototype's class in the gallery: its other prototypes, the parts the model learned for that class.
    const classLink = el("a", { href: "#gallery", class: "class-link", text: `all prototypes of ${p.label}` });
    classLink.addEventListener("click", () => showClassInGallery(result.model.name, p.classIndex));
    return el("li", { class: "proto-row", style: `--box: ${rowColour}`, "data-prototype": String(p.prototypeIndex) },
      el("div", { class: "proto-head" }, el("h4", { text: `#${i + 1}: prototype ${p.prototypeIndex} of class ${p.label}` }), classLink),
      figures, points,
      p.probabilityWithoutBox !== undefined ? evidence(p, explanation.label) : null);
  }));

  const shown = explanation.prototypes.reduce((sum, p) => sum + p.contribution, 0);
  $("explanation-total").textContent =
    `${fmt(shown)} points from these prototypes ${signed(explanation.otherPrototypesContribution)} from the other prototypes ` +
    `= ${fmt(explanation.logit)}, the score (logit) of ${explanation.label}.`;
  $("result").hidden = false;
}

/** The image explained again for another of its top classes (null: the predicted one). */
function explainAnotherClass(classIndex, pressed) {
  state.explainClass = classIndex;
  state.focusClass = pressed;
  classify(state.lastFile);
}

/** What the check says about one prototype's box: the explained class's probability without it, and the drop. */
function evidence(p, label) {
  // A box whose removal costs the class at least 5 points of probability carries part of the decision. A smaller drop
  // says only that this box alone is not needed: a confident answer often rests on several parts at once.
  const carries = p.drop >= 0.05;
  return el("p", { class: `evidence ${carries ? "carries" : "weak"}`, "data-drop": String(p.drop) },
    `Without this box: ${percent(p.probabilityWithoutBox)} for ${label} (drop ${(100 * p.drop).toFixed(1)} points). `,
    el("span", { class: "verdict", text: carries ? "This part carries the decision." : "The decision stands without this box alone." }));
}

// ---------------------------------------------------------------- wiring

export function wireClassify() {
  document.addEventListener("models-listed", showExamples);
  $("file").addEventListener("change", (event) => classify(event.target.files[0]));
  $("model").addEventListener("change", () => {
    state.explainClass = null;   // another model's classes
    showExamples();
    if (state.lastFile) classify(state.lastFile);
  });
  $("top-prototypes").addEventListener("change", () => { if (state.lastFile) classify(state.lastFile); });
  $("verify").addEventListener("change", () => { if (state.lastFile) classify(state.lastFile); });
  $("classify-form").addEventListener("submit", (event) => { event.preventDefault(); classify(state.lastFile); });
  $("save-card").addEventListener("click", saveCard);

  const zone = $("drop-zone");
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (event) => { event.preventDefault(); zone.classList.add("dragging"); });
  }
  for (const type of ["dragleave", "drop"]) {
    zone.addEventListener(type, () => zone.classList.remove("dragging"));
  }
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    const file = event.dataTransfer && event.dataTransfer.files[0];
    if (file) classify(file);
  });
  // A file dropped beside the zone would make the browser open it and leave the page: on the classify view it is
  // classified as if dropped on the zone, elsewhere it is ignored.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => {
    event.preventDefault();
    const file = event.dataTransfer && event.dataTransfer.files[0];
    if (file && !$("view-classify").hidden && !zone.contains(event.target)) classify(file);
  });
  // A pasted image (a screenshot, an image copied in another tab) is classified on the classify view.
  document.addEventListener("paste", (event) => {
    const file = event.clipboardData && [...event.clipboardData.files].find((f) => f.type.startsWith("image/"));
    if (!file || $("view-classify").hidden) return;
    event.preventDefault();
    classify(new File([file], file.name || "pasted image.png", { type: file.type }));
  });

  $("classify-key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(CLASSIFY_KEY_STORAGE, $("classify-key").value);
    $("classify-key").value = "";
    $("classify-key-form").hidden = true;
    clearError();
    $("file").focus();   // the form that had the focus is gone
    if (state.lastFile) classify(state.lastFile);
  });
}
