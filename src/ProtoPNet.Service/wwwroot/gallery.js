// The prototype gallery: every prototype of a model's default version, by class, with the training image it comes from
// and the badges of the bundle's interpretability scorecard.
import { $, el, fmt, BOX_COLOURS, boxedImage, showProblem } from "./page.js";
import { servedModels, prototypesOf } from "./models.js";

let galleryRequest = 0;   // a counter, so a slow answer for a model picked before never overwrites a newer one
let askedClass = null;    // { model, classIndex }: the class the classify view asked the gallery to show

const share = (value) => Math.round(100 * value) + "%";

/** A prototype's badges from the scorecard: consistency (data with parts), noise and JPEG stability, background. */
function badges(score, threshold) {
  if (!score) return null;
  const list = el("ul", { class: "badges", "aria-label": "Measured explanation quality" });
  // A measure below the threshold says so in words too, not by its colour alone.
  const badge = (kind, text, good, title) =>
    list.append(el("li", { class: `badge ${kind} ${good ? "good" : "weak"}`, title, text: good ? text : `${text}, low` }));
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
    list.append(el("li", { class: "badge background weak", title: "Its own patch is mostly background, not part of an object", text: "background" }));
  }
  return list;
}

export async function renderGallery() {
  const model = servedModels().find((m) => m.name === $("gallery-model").value);
  const gallery = $("gallery-classes");
  const request = ++galleryRequest;
  if (!model) { gallery.replaceChildren(); return; }
  $("gallery-status").textContent = `Loading the prototypes of ${model.name}...`;
  try {
    const prototypes = await prototypesOf(model.name, model.defaultVersion);
    if (request !== galleryRequest) return;   // another model was picked meanwhile
    const input = prototypes.input;
    const classes = prototypes.classes.slice().sort((a, b) => a.index - b.index);
    const scorecard = prototypes.scorecard;
    // A badge is green at the scorecard's consistency threshold (0.8) or above.
    const threshold = (scorecard && scorecard.consistencyThreshold) || 0.8;
    const byClass = new Map(classes.map((c) => [c.index, []]));
    for (const p of prototypes.list) byClass.get(p.classIndex)?.push(p);
    gallery.replaceChildren(...classes.map((c) => {
      const members = byClass.get(c.index);
      const titleId = `gallery-class-${c.index}`;
      return el("section", { class: "gallery-class", "aria-labelledby": titleId, "data-class": String(c.index) },
        el("h3", { id: titleId, text: `${c.name} (${members.length} prototype${members.length === 1 ? "" : "s"})` }),
        el("ul", { class: "gallery-grid" }, ...members.map((p) => el("li", { "data-prototype": String(p.index) },
          el("div", { class: "pair" },
            el("img", { src: p.pictures.patch, class: "pixelated", loading: "lazy", alt: `Prototype ${p.index} of class ${c.name}: its patch` }),
            boxedImage(p.pictures.source, `The training image of prototype ${p.index}, with the patch boxed`, input.width, input.height,
              [{ box: p.source ? p.source.box : null, colour: BOX_COLOURS[0] }], "source")),
          el("p", { class: "muted", text: `#${p.index}` + (p.source && p.source.item != null && p.source.item !== "" ? ` from ${p.source.split || "train"} item ${p.source.item}` : "") }),
          badges(prototypes.scoresByIndex.get(p.index), threshold)))));
    }));
    offerClasses(model.name, classes, byClass);
    showChosenClass();
    $("gallery-status").textContent = `${prototypes.list.length} prototypes of ${model.name} (version ${model.defaultVersion}).`;
    const summary = scorecard ? scorecardSummary(scorecard) : "";
    $("gallery-scorecard").textContent = summary;
    $("gallery-scorecard").hidden = !summary;
  } catch (problem) {
    if (request !== galleryRequest) return;
    $("gallery-status").textContent = "";
    showProblem(problem, "The gallery cannot be loaded", "gallery");
  }
}

/**
 * The gallery's class menu: every class, or one class of the model shown (a model of 200 classes is a long page). A class
 * chosen before stays chosen while the same model is shown; the classify view may have asked for one (showClassInGallery).
 */
function offerClasses(modelName, classes, byClass) {
  const select = $("gallery-class");
  const asked = askedClass && askedClass.model === modelName ? String(askedClass.classIndex) : null;
  askedClass = null;
  const kept = asked ?? (select.dataset.model === modelName ? select.value : "");
  select.replaceChildren(el("option", { value: "", text: "All classes" }),
    ...classes.map((c) => el("option", { value: String(c.index), text: `${c.name} (${byClass.get(c.index).length})` })));
  select.dataset.model = modelName;
  select.value = classes.some((c) => String(c.index) === kept) ? kept : "";
}

/** Shows the chosen class's prototypes alone, or every class's. */
function showChosenClass() {
  const chosen = $("gallery-class").value;
  for (const section of $("gallery-classes").querySelectorAll("section.gallery-class")) {
    section.hidden = chosen !== "" && section.dataset.class !== chosen;
  }
}

/** The gallery is to show this class of this model once it is shown (the classify view's link to a prototype's class). */
export function showClassInGallery(modelName, classIndex) {
  askedClass = { model: modelName, classIndex };
  $("gallery-model").value = modelName;
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

export function wireGallery() {
  $("gallery-model").addEventListener("change", renderGallery);
  $("gallery-class").addEventListener("change", showChosenClass);
}
