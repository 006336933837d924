// The models the service serves (GET /models), shown in both model menus, and each version's prototype listing.
import { $, el, getJson, showError, showProblem, clearError } from "./page.js";

let served = [];            // GET /models -> models
let loading = false;        // GET /models said the service was still loading its models: asked again until it is not
const listings = new Map(); // "name@version" -> a promise of the version's prototypes and scorecard

/** The models of the last listing. */
export const servedModels = () => served;

/** The model chosen in the classify view's menu. */
export const selectedModel = () => served.find((m) => m.name === $("model").value);

/**
 * Lists the served models in both model menus; a menu keeps its choice while that model is still served. Then the
 * document gets a "models-listed" event (the classify view shows the chosen model's examples on it).
 */
export async function loadModels() {
  try {
    const body = await getJson("/models");
    served = body.models || [];
    for (const select of [$("model"), $("gallery-model")]) {
      const chosen = select.value;
      select.replaceChildren(...served.map((m) =>
        el("option", { value: m.name, text: `${m.name} (${m.classes.length} classes, ${m.prototypeCount} prototypes)` })));
      const asked = new URLSearchParams(location.search).get("model");
      const preferred = served.find((m) => m.name === chosen) || served.find((m) => m.name === asked)
        || served.find((m) => m.isDefaultModel) || served[0];
      if (preferred) select.value = preferred.name;
    }
    if (served.length === 0 && body.loading) {
      // Just started: the service listens before its models are loaded.
      showError("The service is loading its models", "It has just started; this page asks again every 2 seconds.");
      loading = true;
      setTimeout(loadModels, 2000);
    } else if (served.length === 0) {
      const refused = (body.refused || []).length;
      showError("No model is loaded", `The service's model root holds no valid bundle${refused ? ` (${refused} refused: GET /models says why)` : ""}; `
        + "a bundle published there is loaded by itself, and this page lists it once reloaded.");
    } else if (loading) {
      loading = false;
      clearError();
    }
    document.dispatchEvent(new Event("models-listed"));
  } catch (problem) {
    showProblem(problem, "The models cannot be listed");
  }
}

/** The prototype listing of a model version (source boxes), fetched once: callers at the same time share one fetch. */
export function prototypesOf(name, version) {
  const key = `${name}@${version}`;
  if (!listings.has(key)) {
    const listing = Promise.all([
      getJson(`/models/${encodeURIComponent(name)}/versions/${encodeURIComponent(version)}/prototypes`),
      getJson(`/models/${encodeURIComponent(name)}/versions/${encodeURIComponent(version)}`),
    ]).then(([prototypes, info]) => ({
      input: info.input,
      classes: info.classes,
      // The bundle's interpretability scorecard (null without one): per prototype, by index.
      scorecard: info.interpretability || null,
      scoresByIndex: new Map(((info.interpretability && info.interpretability.prototypes) || []).map((s) => [s.index, s])),
      byIndex: new Map(prototypes.prototypes.map((p) => [p.index, p])),
      list: prototypes.prototypes,
    }));
    listing.catch(() => listings.delete(key));   // a failed fetch is tried again next time
    listings.set(key, listing);
  }
  return listings.get(key);
}
