// The web page: pick a model, upload an image, see "this looks like that". Plain JavaScript, no build step.
"use strict";

const BOX_COLOURS = ["#e6194b", "#0078d7", "#28a03c", "#f58200", "#911eb4", "#00aaaa", "#dc28c8", "#787800"];

const state = {
  models: [],          // GET /models -> models
  prototypes: new Map(), // "name@version" -> a promise of { input, byIndex: Map(index -> prototype) }
  lastFile: null,      // the last image classified, re-sent when the model or count changes
  objectUrl: null,
  request: 0,          // a counter, so a slow answer never overwrites a newer one
  galleryRequest: 0,   // the same for the gallery
  modelsLoading: false, // GET /models said the service was still loading its models: asked again until it is not
  pendingErrors: new Map(), // view -> { title, detail }: a failure of a view not shown, kept until it is shown again
};

const $ = (id) => document.getElementById(id);

function el(tag, attributes = {}, ...children) {
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

const fmt = (value) => Number(value).toFixed(2);
// Weights get a third decimal: a weight of 1.004 shown as 1.00 would make "5.36 x 1.00 = 5.38" look wrong.
const fmtWeight = (value) => Number(value).toFixed(3);
const signed = (value) => (value < 0 ? `\u2212 ${fmt(-value)}` : `+ ${fmt(value)}`);
const percent = (p) => (p * 100).toFixed(1) + "%";

// ---------------------------------------------------------------- errors

/**
 * Turns a failed response into a readable sentence: the problem's detail, else its title, else the status; with the
 * status and the seconds of a Retry-After header (429, 503), for callers that try again.
 */
async function problemMessage(response) {
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
function showProblem(problem, fallbackTitle = "Something went wrong", view = null) {
  if (!problem || typeof problem !== "object" || problem instanceof Error) {
    showError(fallbackTitle, String((problem && problem.message) || problem), view);
    return;
  }
  const retry = problem.retryAfter ? ` Try again in ${problem.retryAfter} s.` : "";
  showError(problem.title || fallbackTitle, `${problem.detail || ""}${retry}`.trim(), view);
}

function showError(title, detail, view = null) {
  if (view && view !== currentView()) {
    state.pendingErrors.set(view, { title, detail });
    return;
  }
  const box = $("error");
  box.replaceChildren(el("strong", { text: title }), detail ? el("span", { text: detail }) : null);
  box.hidden = false;
}

function clearError() {
  $("error").hidden = true;
  $("error").replaceChildren();
}

async function getJson(url) {
  let response;
  try {
    response = await fetch(url, { headers: { Accept: "application/json" } });
  } catch (error) {
    throw { title: "The service cannot be reached", detail: String(error.message || error) };
  }
  if (!response.ok) throw await problemMessage(response);
  return response.json();
}

// ---------------------------------------------------------------- models

/** Lists the served models in both model menus; a menu keeps its choice while that model is still served. */
async function loadModels() {
  try {
    const body = await getJson("/models");
    state.models = body.models || [];
    for (const select of [$("model"), $("gallery-model")]) {
      const chosen = select.value;
      select.replaceChildren(...state.models.map((m) =>
        el("option", { value: m.name, text: `${m.name} (${m.classes.length} classes, ${m.prototypeCount} prototypes)` })));
      const asked = new URLSearchParams(location.search).get("model");
      const preferred = state.models.find((m) => m.name === chosen) || state.models.find((m) => m.name === asked)
        || state.models.find((m) => m.isDefaultModel) || state.models[0];
      if (preferred) select.value = preferred.name;
    }
    if (state.models.length === 0 && body.loading) {
      // Just started: the service listens before its models are loaded.
      showError("The service is loading its models", "It has just started; this page asks again every 2 seconds.");
      state.modelsLoading = true;
      setTimeout(loadModels, 2000);
    } else if (state.models.length === 0) {
      const refused = (body.refused || []).length;
      showError("No model is loaded", `The service's model root holds no valid bundle${refused ? ` (${refused} refused: GET /models says why)` : ""}; `
        + "a bundle published there is loaded by itself, and this page lists it once reloaded.");
    } else if (state.modelsLoading) {
      state.modelsLoading = false;
      clearError();
    }
    showExamples();
  } catch (problem) {
    showProblem(problem, "The models cannot be listed");
  }
}

const selectedModel = () => state.models.find((m) => m.name === $("model").value);

/** The prototype listing of a model version (source boxes), fetched once: callers at the same time share one fetch. */
function prototypesOf(name, version) {
  const key = `${name}@${version}`;
  if (!state.prototypes.has(key)) {
    const loading = Promise.all([
      getJson(`/models/${encodeURIComponent(name)}/versions/${encodeURIComponent(version)}/prototypes`),
      getJson(`/models/${encodeURIComponent(name)}/versions/${encodeURIComponent(version)}`),
    ]).then(([listing, info]) => ({
      input: info.input,
      classes: info.classes,
      // The bundle's interpretability scorecard (null without one): per prototype, by index.
      scorecard: info.interpretability || null,
      scoresByIndex: new Map(((info.interpretability && info.interpretability.prototypes) || []).map((s) => [s.index, s])),
      byIndex: new Map(listing.prototypes.map((p) => [p.index, p])),
      list: listing.prototypes,
    }));
    loading.catch(() => state.prototypes.delete(key));   // a failed fetch is tried again next time
    state.prototypes.set(key, loading);
  }
  return state.prototypes.get(key);
}

// ---------------------------------------------------------------- examples

function showExamples() {
  const model = selectedModel();
  const examples = (model && model.examples) || [];
  const list = $("example-list");
  list.replaceChildren(...examples.map((example) => {
    const name = example.label ? `Example ${example.index + 1} (${example.label})` : `Example ${example.index + 1}`;
    const button = el("button", { type: "button", "data-url": example.url, "aria-label": `Classify ${name}` },
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
    const response = await fetch(url);
    if (!response.ok) throw await problemMessage(response);
    const blob = await response.blob();
    if (request !== state.request) return;
    await classify(new File([blob], name + ".png", { type: blob.type || "image/png" }));
  } catch (problem) {
    if (request !== state.request) return;
    showProblem(problem, "The example cannot be loaded", "classify");
  }
}

// ---------------------------------------------------------------- classify

const MAX_HEATMAP_PIXELS = 4_000_000;

// The classify key (only where the service has Security:ClassifyApiKey): in sessionStorage, like the admin key.
const CLASSIFY_KEY_STORAGE = "protopnet.classifyApiKey";
const classifyKey = () => sessionStorage.getItem(CLASSIFY_KEY_STORAGE);

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

async function classify(file) {
  const model = selectedModel();
  if (!file) return;
  state.lastFile = file;
  const request = ++state.request;
  clearError();
  $("status").textContent = `Classifying ${file.name || "the image"}...`;

  const topPrototypes = prototypesToShow();
  // Heatmaps come back at the decoded size, up to 4 megapixels each; for large photos they would make the answer tens of megabytes long.
  const pixels = await pixelCount(file);
  const heatmaps = pixels === null || pixels <= MAX_HEATMAP_PIXELS;
  const query = new URLSearchParams({ topPrototypes: String(topPrototypes), topClasses: "3", heatmaps: heatmaps ? "png" : "none" });
  if (model) query.set("model", model.name);
  // "Check this explanation": the service runs the image again with each prototype's box filled (one extra network run).
  const verify = $("verify").checked;
  if (verify) query.set("verify", "true");
  const form = new FormData();
  form.append("image", file, file.name || "image");

  try {
    let response;
    try {
      // With Security:ClassifyApiKey the service wants the key: the page asks for it once a 401 or 403 says so.
      const key = classifyKey();
      response = await fetch(`/classify?${query}`, { method: "POST", body: form, headers: key ? { "X-Api-Key": key } : {} });
    } catch (error) {
      throw { title: "The service cannot be reached", detail: String(error.message || error) };
    }
    if (response.status === 401 || response.status === 403) {
      const problem = await problemMessage(response);
      sessionStorage.removeItem(CLASSIFY_KEY_STORAGE);
      $("classify-key-form").hidden = false;
      throw problem;
    }
    if (!response.ok) throw await problemMessage(response);
    const result = await response.json();
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
    $("status").textContent = `Done in ${fmt(result.timingsMs.total)} ms` +
      (result.timingsMs.verify !== undefined ? ` (checking the boxes took ${fmt(result.timingsMs.verify)} ms).` : ".") +
      (heatmaps ? "" : " Heatmaps are left out for images over 4 megapixels.") +
      (shown ? "" : " This browser cannot show the file's format, so the boxes are drawn on a blank of its size; the heatmaps show the image.");
    if (listingProblem) showProblem({ ...listingProblem, title: "The training images' boxes cannot be shown",
      detail: listingProblem.detail || listingProblem.title || String(listingProblem.message || listingProblem) }, undefined, "classify");
  } catch (problem) {
    if (request !== state.request) return;
    $("result").hidden = true;
    $("status").textContent = "";
    showProblem(problem, undefined, "classify");
  }
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

/** An image with boxes drawn over it; boxes are in pixels of an image of width x height. */
function boxedImage(src, alt, width, height, boxes, className) {
  const wrapper = el("div", { class: "boxed" }, el("img", { src, alt, class: className }));
  for (const box of boxes) {
    if (!box.box) continue;
    const style = [
      `--box: ${box.colour}`,
      `left: ${(100 * box.box.x) / width}%`, `top: ${(100 * box.box.y) / height}%`,
      `width: ${(100 * box.box.width) / width}%`, `height: ${(100 * box.box.height) / height}%`,
    ].join("; ");
    const div = el("div", { class: "box", style, "aria-hidden": "true" });
    if (box.tag) div.append(el("span", { class: "tag", text: box.tag }));
    wrapper.append(div);
  }
  return wrapper;
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

  $("top-classes").replaceChildren(...result.topClasses.map((c) =>
    el("li", { class: c.classIndex === prediction.classIndex ? "predicted" : "" },
      el("span", { text: c.label }),
      el("span", { text: percent(c.probability) }),
      el("span", { class: "bar", "aria-hidden": "true" }, el("span", { style: `width: ${(100 * c.probability).toFixed(1)}%` })))));

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
    return el("li", { class: "proto-row", style: `--box: ${rowColour}`, "data-prototype": String(p.prototypeIndex) },
      el("h4", { text: `#${i + 1}: prototype ${p.prototypeIndex} of class ${p.label}` }), figures, points,
      p.probabilityWithoutBox !== undefined ? evidence(p, explanation.label) : null);
  }));

  const shown = explanation.prototypes.reduce((sum, p) => sum + p.contribution, 0);
  $("explanation-total").textContent =
    `${fmt(shown)} points from these prototypes ${signed(explanation.otherPrototypesContribution)} from the other prototypes ` +
    `= ${fmt(explanation.logit)}, the score (logit) of ${explanation.label}.`;
  $("result").hidden = false;
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

// ---------------------------------------------------------------- gallery

const share = (value) => Math.round(100 * value) + "%";

/** A prototype's badges from the scorecard: consistency (data with parts), noise and JPEG stability, background. */
function badges(score, threshold) {
  if (!score) return null;
  const list = el("ul", { class: "badges", "aria-label": "Measured explanation quality" });
  const badge = (kind, text, good, title) =>
    list.append(el("li", { class: `badge ${kind} ${good ? "good" : "weak"}`, title, text }));
  if (typeof score.consistency === "number") {
    badge("consistency", `consistent ${share(score.consistency)}`, score.consistency >= threshold,
      `Its box lands on the same part (${score.part || "none"}) in ${share(score.consistency)} of its class's test images`);
  }
  if (typeof score.noiseStability === "number") {
    badge("noise", `noise ${share(score.noiseStability)}`, score.noiseStability >= threshold,
      `Its box maps to the same thing under Gaussian noise in ${share(score.noiseStability)} of its class's test images`);
  }
  if (typeof score.jpegStability === "number") {
    badge("jpeg", `JPEG ${share(score.jpegStability)}`, score.jpegStability >= threshold,
      `Its box maps to the same thing after JPEG re-encoding in ${share(score.jpegStability)} of its class's test images`);
  }
  if (score.background === true) {
    badge("background", "background", false, "Its own patch is mostly background, not part of an object");
  }
  return list;
}

async function renderGallery() {
  const model = state.models.find((m) => m.name === $("gallery-model").value);
  const gallery = $("gallery");
  const request = ++state.galleryRequest;
  if (!model) { gallery.replaceChildren(); return; }
  $("gallery-status").textContent = `Loading the prototypes of ${model.name}...`;
  try {
    const prototypes = await prototypesOf(model.name, model.defaultVersion);
    if (request !== state.galleryRequest) return;   // another model was picked meanwhile
    const input = prototypes.input;
    const classes = prototypes.classes.slice().sort((a, b) => a.index - b.index);
    const scorecard = prototypes.scorecard;
    // A badge is green at the scorecard's consistency threshold (0.8) or above.
    const threshold = (scorecard && scorecard.consistencyThreshold) || 0.8;
    gallery.replaceChildren(...classes.map((c) => {
      const members = prototypes.list.filter((p) => p.classIndex === c.index);
      const titleId = `gallery-class-${c.index}`;
      return el("section", { class: "gallery-class", "aria-labelledby": titleId },
        el("h3", { id: titleId, text: `${c.name} (${members.length} prototype${members.length === 1 ? "" : "s"})` }),
        el("ul", { class: "gallery-grid" }, ...members.map((p) => el("li", { "data-prototype": String(p.index) },
          el("div", { class: "pair" },
            el("img", { src: p.pictures.patch, class: "pixelated", loading: "lazy", alt: `Prototype ${p.index} of class ${c.name}: its patch` }),
            boxedImage(p.pictures.source, `The training image of prototype ${p.index}, with the patch boxed`, input.width, input.height,
              [{ box: p.source ? p.source.box : null, colour: BOX_COLOURS[0] }], "source")),
          el("p", { class: "muted", text: `#${p.index}` + (p.source && p.source.item != null && p.source.item !== "" ? ` from ${p.source.split || "train"} item ${p.source.item}` : "") }),
          badges(prototypes.scoresByIndex.get(p.index), threshold)))));
    }));
    $("gallery-status").textContent = `${prototypes.list.length} prototypes of ${model.name} (version ${model.defaultVersion}).`;
    const summary = scorecard ? scorecardSummary(scorecard) : "";
    $("gallery-scorecard").textContent = summary;
    $("gallery-scorecard").hidden = !summary;
  } catch (problem) {
    if (request !== state.galleryRequest) return;
    $("gallery-status").textContent = "";
    showProblem(problem, "The gallery cannot be loaded", "gallery");
  }
}

/** The scorecard's headline numbers in one sentence, or "" when it has none (every field of a scorecard may be null). */
function scorecardSummary(scorecard) {
  const parts = [];
  if (typeof scorecard.pointingGame === "number") parts.push(`pointing game ${share(scorecard.pointingGame)}`);
  if (typeof scorecard.consistency === "number") parts.push(`consistent prototypes ${share(scorecard.consistency)}`);
  if (typeof scorecard.noiseStability === "number") parts.push(`noise stability ${share(scorecard.noiseStability)}`);
  if (typeof scorecard.jpegStability === "number") parts.push(`JPEG stability ${share(scorecard.jpegStability)}`);
  if (scorecard.deletion && typeof scorecard.deletion.ratio === "number") parts.push(`deletion ratio ${fmt(scorecard.deletion.ratio)}`);
  if (typeof scorecard.backgroundPrototypes === "number") parts.push(`${scorecard.backgroundPrototypes} background prototypes`);
  if (parts.length === 0) return "";
  const images = typeof scorecard.images === "number" ? ` on ${scorecard.images} test images` : "";
  return `Measured explanation quality${images}: ${parts.join(", ")}.`;
}

// ---------------------------------------------------------------- training

// The admin key lives in sessionStorage: it is sent only to this service, and forgotten when the tab is closed.
const KEY_STORAGE = "protopnet.adminApiKey";
const SVG = "http://www.w3.org/2000/svg";
// job: the job shown; stream: the AbortController of its progress stream; offering: the version whose link is awaited.
const training = { options: null, dataFolders: null, chosenData: null, job: null, stream: null, offering: null };

const adminKey = () => sessionStorage.getItem(KEY_STORAGE);

/** fetch with the admin key; a 401 or 403 forgets the key and asks for it again. */
async function adminFetch(url, init = {}) {
  let response;
  try {
    response = await fetch(url, { ...init, headers: { ...(init.headers || {}), "X-Api-Key": adminKey() || "" } });
  } catch (error) {
    throw { title: "The service cannot be reached", detail: String(error.message || error) };
  }
  if (response.status === 401 || response.status === 403) {
    const problem = await problemMessage(response);
    sessionStorage.removeItem(KEY_STORAGE);
    showTrainingForms();
    throw problem;
  }
  if (!response.ok) throw await problemMessage(response);
  return response;
}

function showTrainingForms() {
  const hasKey = Boolean(adminKey());
  $("training-key-form").hidden = hasKey;
  $("training-ready").hidden = !hasKey;
}

async function openTraining() {
  showTrainingForms();
  if (!adminKey()) return;
  try {
    if (!training.options) {
      training.options = await (await adminFetch("/training/options")).json();
      $("training-preset").replaceChildren(...training.options.presets.map((p) =>
        el("option", { value: p.name, text: `${p.name} (${p.dataset}, ${p.epochs} epochs by default)` })));
      const smoke = training.options.presets.find((p) => p.name === "smoke");
      if (smoke) $("training-preset").value = smoke.name;
      presetChosen();
    }
    await listDataFolders();
    offerData();
    await listJobs();
  } catch (problem) {
    // A service without a jobs folder takes no jobs: no form to fill in for nothing.
    if (isProblem(problem, "training-not-configured")) $("training-ready").hidden = true;
    showProblem(problem, "Training cannot be opened", "training");
  }
}

/** Whether a failure is the service's problem of this kind (urn:protopnet:problem:<kind>). */
const isProblem = (problem, kind) => Boolean(problem) && typeof problem.type === "string" && problem.type.endsWith(`:${kind}`);

/** The folders of the service's data root, looked at each time the tab opens (folders put there meanwhile are offered). A
 * data root the service cannot read is said under the choice, not as an error of the whole tab: the recipes' own data
 * can still be trained on. */
async function listDataFolders() {
  try {
    training.dataFolders = await (await adminFetch("/training/data")).json();
  } catch (problem) {
    if (isProblem(problem, "training-not-configured")) throw problem;
    const why = (problem && (problem.detail || problem.title || problem.message)) || String(problem);
    training.dataFolders = { configured: true, folders: [], truncated: false, unavailable: why };
  }
}

const chosenPreset = () => training.options && training.options.presets.find((p) => p.name === $("training-preset").value);

/** The epochs field follows the chosen preset's default (the user may change it after), its summary is shown, and the data
 * choices follow its data set. */
function presetChosen() {
  const preset = chosenPreset();
  if (preset) {
    $("training-epochs").value = String(preset.epochs);
    $("training-preset-summary").textContent = preset.summary || "";
  }
  offerData();
}

const DATASET_WORDS = { imagefolder: "image folder", cub200: "CUB-200-2011 folder" };

/** The data choices: the preset's own data set (unless it reads a folder it has no default for), then every folder under
 * the service's data root (GET /training/data); one the trainer would refuse is shown with why, and cannot be chosen. */
function offerData() {
  const preset = chosenPreset();
  if (!preset) return;
  const select = $("training-data");
  // The user's own choice, kept while another is shown in its place (a folder only usable with the box ticked).
  const wanted = training.chosenData || select.value;
  const options = [];
  const generated = (training.options.generatedDatasets || []).includes(preset.dataset);
  if (!(training.options.folderDatasets || []).includes(preset.dataset)) {
    options.push(el("option", { value: "own", text: generated ? `${preset.dataset}, drawn by the trainer` : `${preset.dataset}, the recipe's own` }));
  }
  const listing = training.dataFolders || { configured: false, folders: [] };
  // A folder is chosen by its name: the list is looked at again when the tab opens, and positions move. One whose files
  // include empty ones or links to nothing can be chosen once they are to be left out (the trainer would stop on them).
  const skipping = $("training-skip-unreadable").checked;
  for (const folder of listing.folders) {
    const counts = `${DATASET_WORDS[folder.dataset] || folder.dataset}, ${counted(folder.classes, "class", "classes")}, `
      + `${folder.trainImages} training and ${counted(folder.testImages, "test image", "test images")}`;
    const unreadable = folder.unreadableImages
      ? `${counted(folder.unreadableImages, "image file is", "image files are")} empty or a link to nothing` : "";
    const why = folder.problem || (unreadable && !skipping ? `${unreadable}: tick "Leave out image files that cannot be read"` : "");
    const left = unreadable && skipping ? `; ${unreadable}, left out` : "";
    options.push(el("option", why
      ? { value: `folder:${folder.data}`, disabled: "", text: `${folder.data} (${counts}): cannot be trained on: ${why}` }
      : { value: `folder:${folder.data}`, text: `${folder.data} (${counts}${left})` }));
  }
  if (!options.some((option) => !option.disabled)) {
    options.unshift(el("option", { value: "", disabled: "", text: "no data to train this recipe on" }));
  }
  select.replaceChildren(...options);
  const kept = options.find((option) => option.value === wanted && !option.disabled) || options.find((option) => !option.disabled) || options[0];
  select.value = kept.value;
  // Said when Train is pressed, rather than the browser's "select an item".
  select.setCustomValidity(kept.value ? "" : "There is no data this recipe can train on: put an image folder in the service's data folder, or choose another recipe.");
  // A folder chosen before that is gone, or cannot be trained on now, is not swapped for another without a word.
  let lost = "";
  if (wanted.startsWith("folder:") && kept.value !== wanted) {
    const name = wanted.slice("folder:".length);
    const folder = listing.folders.find((f) => f.data === name);
    lost = !folder ? `${name}, chosen before, is no longer in the data folder. `
      : folder.problem ? `${name}, chosen before, cannot be trained on now: ${folder.problem}. `
        : `${name}, chosen before, needs "Leave out image files that cannot be read" ticked. `;
  }
  const cut = listing.truncated ? " It holds more folders than were searched: keep data sets at most two levels down." : "";
  $("training-data-hint").textContent = lost + (listing.unavailable
    ? `The service's data folder cannot be read: ${listing.unavailable}`
    : !listing.configured
      ? "The service has no data folder (Training:DataRoot), so only a recipe's own data can be used."
      : listing.folders.length === 0
        ? `No image folder (train/ and test/, a folder per class) was found in the service's data folder (Training:DataRoot).${cut}`
        : `Folders found in the service's data folder (Training:DataRoot).${cut}`);
}

/** "1 class", "3 classes". */
const counted = (count, one, many) => `${count} ${count === 1 ? one : many}`;

async function submitTraining(event) {
  event.preventDefault();
  clearError();
  const submit = $("training-submit");
  if (submit.disabled) return;
  // A new job: the link to the last one's model goes until this one publishes its own.
  stopFollowing();
  const body = {
    name: $("training-name").value.trim(),
    preset: $("training-preset").value,
    options: { epochs: parseInt($("training-epochs").value, 10) },
  };
  if ($("training-skip-unreadable").checked) body.options.skipUnreadableImages = true;
  const data = $("training-data").value;
  if (data.startsWith("folder:")) {
    const folder = training.dataFolders.folders.find((f) => f.data === data.slice("folder:".length));
    body.dataset = folder.dataset;
    body.data = folder.data;
  }
  submit.disabled = true;   // one job per click: a double click would queue two
  try {
    const response = await adminFetch("/training/jobs", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    showJob(await response.json());
    followJob(response.headers.get("Location"));
  } catch (problem) {
    showProblem(problem, "The job cannot be submitted", "training");
  } finally {
    submit.disabled = false;
  }
}

/** Stops showing the followed job: its progress stream, its panel's model link and the wait for that model. */
function stopFollowing() {
  if (training.stream) training.stream.abort();
  training.stream = null;
  training.offering = null;
  $("training-done").hidden = true;
}

/** Reads the job's Server-Sent Events (fetch, not EventSource: it sends the key as a header, never in the URL). A stream
 * that ends before the job has (the service restarted, a proxy cut it) is opened again, every 2 s for a minute. */
async function followJob(location) {
  if (training.stream) training.stream.abort();
  const stream = new AbortController();
  training.stream = stream;
  const finished = () => training.job && FINISHED.includes(training.job.status);
  let lastProblem = null;
  for (let tries = 0; tries < 30 && !finished(); tries++) {
    if (tries > 0) {
      $("training-status").textContent = "The connection to the service was lost; reconnecting...";
      await new Promise((resolve) => setTimeout(resolve, 2000));
      if (stream.signal.aborted) return;
    }
    try {
      const response = await adminFetch(`${location}/events`, { signal: stream.signal, headers: { Accept: "text/event-stream" } });
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = block.split("\n").filter((line) => line.startsWith("data:")).map((line) => line.slice(5).trimStart()).join("\n");
          if (data) {
            showJob(JSON.parse(data));
            tries = 0;   // it answered: a later cut gets the whole minute again
          }
        }
      }
    } catch (problem) {
      if (stream.signal.aborted) return;
      lastProblem = problem;
      // A missing key (asked for again by adminFetch) or a job that is gone will not come back by waiting.
      if (problem && problem.status && problem.status < 500 && problem.status !== 429) break;
    }
  }
  if (stream.signal.aborted || finished()) return;
  if (training.job) showJob(training.job);
  showProblem(lastProblem || { detail: "The service stopped sending the job's progress; reload the page to look again." },
    "The job's progress cannot be followed", "training");
}

const FINISHED = ["succeeded", "failed", "cancelled"];
// A jobs folder keeps every finished job until it is removed (3,000 of them made a 5 MB list): the page shows the newest.
const LISTED_JOBS = 100;

/** The jobs of the jobs folder, newest first: follow one, cancel a queued or running one, remove a finished one. */
async function listJobs() {
  if (!adminKey()) return;
  let jobs;
  try {
    jobs = await (await adminFetch(`/training/jobs?limit=${LISTED_JOBS}`)).json();
  } catch (problem) {
    showProblem(problem, "The training jobs cannot be listed", "training");
    return;
  }
  $("training-jobs").hidden = false;
  $("training-jobs-empty").hidden = jobs.length > 0;
  $("training-jobs-table").hidden = jobs.length === 0;
  $("training-jobs-table").tBodies[0].replaceChildren(...jobs.map(jobRow));
  $("training-jobs-listed").textContent = String(LISTED_JOBS);
  $("training-jobs-more").hidden = jobs.length < LISTED_JOBS;
}

function jobRow(job) {
  const action = (text, run) => {
    const button = el("button", { type: "button", class: "link-button", text, "aria-label": `${text} ${job.name} (${job.id})` });
    button.addEventListener("click", run);
    return button;
  };
  const actions = el("td", { class: "actions" }, action("Follow", () => {
    stopFollowing();
    showJob(job);
    followJob(`/training/jobs/${encodeURIComponent(job.id)}`);
  }));
  if (FINISHED.includes(job.status)) actions.append(action("Remove", () => changeJob(job, "/folder")));
  else if (!job.cancelRequested) actions.append(action("Cancel", () => changeJob(job, "")));
  const queued = job.createdAt ? new Date(job.createdAt).toLocaleString() : "";
  // The recipe with the data it reads, when the job names any: two jobs of one preset on two folders look apart.
  const recipe = job.dataset || job.data ? `${job.preset} on ${[job.dataset, job.data].filter(Boolean).join(" ")}` : job.preset;
  // Why a job failed, and whether it warned, without following it first.
  const status = el("td", { class: "job-status", text: statusWord(job) });
  if (job.status === "failed" && job.error) status.append(el("span", { class: "job-error", text: `: ${job.error}` }));
  if (job.warnings && job.warnings.length) status.append(el("span", { class: "job-warned", text: ` (${counted(job.warnings.length, "warning", "warnings")})` }));
  return el("tr", { "data-job": job.id },
    el("td", { class: "job-name", text: jobName(job) }), el("td", { text: recipe }), status, el("td", { text: queued }), actions);
}

const jobName = (job) => job.name || "(unnamed)";
// A running job asked to stop goes on until its worker's next step: "cancelling" until then.
const statusWord = (job) => (job.cancelRequested && !FINISHED.includes(job.status) ? "cancelling" : job.status);

/** DELETE /training/jobs/{id} (cancel) or /training/jobs/{id}/folder (remove), then the list again. */
async function changeJob(job, suffix) {
  clearError();
  try {
    const response = await adminFetch(`/training/jobs/${encodeURIComponent(job.id)}${suffix}`, { method: "DELETE" });
    const changed = await response.json();
    if (training.job && training.job.id === job.id) {
      if (suffix) {   // removed: nothing left to show
        stopFollowing();
        training.job = null;
        $("training-job").hidden = true;
      } else {
        showJob(changed);
      }
    }
  } catch (problem) {
    showProblem(problem, "The job cannot be changed", "training");
  }
  await listJobs();
}

const STAGES = {
  starting: "setting up", "checking-images": "checking the images", "warm-up": "warm-up", joint: "joint training", push: "projecting prototypes (push)",
  "last-layer": "training the last layer", prune: "pruning", baseline: "training the baseline", export: "publishing",
};

function showJob(job) {
  const before = training.job && training.job.id === job.id ? statusWord(training.job) : null;
  const warned = training.job && training.job.id === job.id ? (training.job.warnings || []).length : null;
  training.job = job;
  const row = document.querySelector(`#training-jobs-table tr[data-job="${CSS.escape(job.id)}"]`);
  if (row && (before !== statusWord(job) || warned !== (job.warnings || []).length)) row.replaceWith(jobRow(job));
  else if (!row && !$("training-jobs").hidden) listJobs();
  $("training-job").hidden = false;
  $("training-job-title").textContent = `${jobName(job)} (${job.preset || "no recipe"})`;
  const progress = job.progress;
  $("training-progress").value = job.status === "succeeded" ? 1 : progress ? progress.fraction : 0;
  const checked = progress && progress.imagesToCheck ? ` (${progress.imagesChecked} of ${progress.imagesToCheck})` : "";
  const stage = progress && progress.stage ? `, ${STAGES[progress.stage] || progress.stage}${checked}` : "";
  const epoch = progress && progress.epochs ? `: epoch ${progress.epoch} of ${progress.epochs}${stage}` : stage;
  const finish = job.estimatedFinishAt ? `, done at about ${new Date(job.estimatedFinishAt).toLocaleTimeString()}` : "";
  const text = {
    queued: job.cancelRequested ? "Cancelling." : "Queued: waiting for a training worker.",
    running: job.cancelRequested
      ? `Cancelling: the worker stops at its next step${epoch ? ` (at ${epoch.slice(2)})` : ""}.`
      : `Training${epoch}${finish} (${Math.round(100 * (progress ? progress.fraction : 0))}%).`,
    // Other programs write a job's status too (TRAINING_JOBS.md): a field may be missing where the worker always sets it.
    succeeded: job.publishedVersion ? `Trained and published as version ${job.publishedVersion}.` : "Trained and published.",
    failed: `Failed: ${job.error || "no reason was given"}`,
    cancelled: "Cancelled.",
  }[job.status] || job.status;
  $("training-status").textContent = text;
  // What the run warned of (files left out of the data, ...): the worker's console is not where a user looks.
  const warnings = $("training-warnings");
  warnings.replaceChildren(...(job.warnings || []).map((warning) => el("li", { text: `Warning: ${warning}` })));
  warnings.hidden = warnings.children.length === 0;
  // No finished epoch yet (queued, or cancelled before it started): no curve rather than empty axes.
  $("training-curve").closest("figure").hidden = job.history.length === 0;
  drawCurve(job.history, Math.max(1, progress && progress.epochs ? progress.epochs : job.history.length));
  if (job.status === "succeeded") offerModel(job, job.publishedVersion);
}

/** Accuracy per epoch: test accuracy as a solid line with a point per epoch, training accuracy dashed. */
function drawCurve(history, epochs) {
  const svg = $("training-curve");
  const left = 34, right = 350, top = 10, bottom = 160;
  const span = Math.max(1, epochs - 1);
  const x = (epoch) => left + ((epoch - 1) / span) * (right - left);
  const y = (accuracy) => bottom - accuracy * (bottom - top);
  const node = (tag, attributes, text) => {
    const element = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
    if (text !== undefined) element.textContent = text;
    return element;
  };
  const parts = [];
  for (const level of [0, 0.5, 1]) {
    parts.push(node("line", { class: "grid", x1: left, x2: right, y1: y(level), y2: y(level) }));
    parts.push(node("text", { x: 4, y: y(level) + 3 }, `${level * 100}%`));
  }
  parts.push(node("text", { x: left, y: 176 }, "epoch 1"), node("text", { x: right - 40, y: 176 }, `epoch ${epochs}`));
  const line = (key, className) => {
    const points = history.filter((e) => e[key] !== null && e[key] !== undefined).map((e) => `${x(e.epoch)},${y(e[key])}`);
    if (points.length) parts.push(node("polyline", { class: className, points: points.join(" ") }));
  };
  line("trainAccuracy", "train");
  line("testAccuracy", "test");
  for (const e of history) {
    if (e.testAccuracy === null || e.testAccuracy === undefined) continue;
    const point = node("circle", { class: "test-point", cx: x(e.epoch), cy: y(e.testAccuracy), r: 3, "data-epoch": e.epoch });
    point.append(node("title", {}, `epoch ${e.epoch}: test accuracy ${percent(e.testAccuracy)}`));
    parts.push(point);
  }
  svg.replaceChildren(...parts);
}

/**
 * Once the service serves the job's new version, a link under that job that opens it in the classify view. It asks
 * GET /models (which answers whether the model is there or not) for a minute, and stops as soon as another job is shown.
 */
async function offerModel(job, version) {
  const offer = `${job.id}@${version}`;
  if (training.offering === offer) return;
  training.offering = offer;
  const stillOffered = () => training.offering === offer && training.job && training.job.id === job.id;
  for (let tries = 0; tries < 120 && stillOffered(); tries++) {
    let wait = 500;
    try {
      const listing = await getJson("/models");
      const model = (listing.models || []).find((m) => m.name === job.name);
      if (model && model.versions.includes(version)) {
        if (!stillOffered()) return;
        const link = $("training-model-link");
        link.href = `?model=${encodeURIComponent(job.name)}#classify`;
        link.textContent = `Open ${job.name} in the classify view`;
        $("training-done").hidden = false;
        return;
      }
    } catch (problem) {
      // Busy: as long as it asks; unreachable: the next try.
      if (problem && problem.retryAfter) wait = 1000 * problem.retryAfter;
    }
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
  if (stillOffered()) $("training-status").textContent += " The service has not loaded it yet; reload the page later.";
}

// ---------------------------------------------------------------- views and wiring

const VIEWS = ["classify", "gallery", "training"];

const currentView = () => (VIEWS.includes(location.hash.slice(1)) ? location.hash.slice(1) : "classify");

/**
 * Shows the view the address names; a change of view clears the last error (the first showing keeps the start's) and
 * shows the one that came for this view while another was shown.
 */
function showView(clear = true) {
  const current = currentView();
  for (const view of VIEWS) {
    $(`view-${view}`).hidden = view !== current;
    const tab = $(`tab-${view}`);
    if (view === current) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  if (clear) clearError();
  const pending = state.pendingErrors.get(current);
  if (pending) {
    state.pendingErrors.delete(current);
    showError(pending.title, pending.detail);
  }
  // Coming back to a view, the models are listed again: a version published meanwhile is the one shown.
  const models = clear && current !== "training" ? loadModels() : Promise.resolve();
  if (current === "gallery") models.then(renderGallery);
  if (current === "training") openTraining();
}

function wire() {
  $("file").addEventListener("change", (event) => classify(event.target.files[0]));
  $("model").addEventListener("change", () => { showExamples(); if (state.lastFile) classify(state.lastFile); });
  $("top-prototypes").addEventListener("change", () => { if (state.lastFile) classify(state.lastFile); });
  $("verify").addEventListener("change", () => { if (state.lastFile) classify(state.lastFile); });
  $("gallery-model").addEventListener("change", renderGallery);
  $("classify-form").addEventListener("submit", (event) => { event.preventDefault(); classify(state.lastFile); });

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
  window.addEventListener("hashchange", () => showView());

  $("classify-key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(CLASSIFY_KEY_STORAGE, $("classify-key").value);
    $("classify-key").value = "";
    $("classify-key-form").hidden = true;
    clearError();
    if (state.lastFile) classify(state.lastFile);
  });

  $("training-key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY_STORAGE, $("training-key").value);
    $("training-key").value = "";
    clearError();
    openTraining();
  });
  $("training-forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORAGE);
    training.options = null;
    training.dataFolders = null;
    training.chosenData = null;
    stopFollowing();   // nothing more is asked with the forgotten key
    training.job = null;
    $("training-job").hidden = true;
    $("training-jobs").hidden = true;
    showTrainingForms();
  });
  $("training-preset").addEventListener("change", presetChosen);
  $("training-skip-unreadable").addEventListener("change", offerData);
  $("training-data").addEventListener("change", () => { training.chosenData = $("training-data").value; });
  $("training-form").addEventListener("submit", submitTraining);
}

wire();
loadModels().then(() => showView(false));
