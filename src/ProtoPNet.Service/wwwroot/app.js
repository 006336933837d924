// The web page: pick a model, upload an image, see "this looks like that". Plain JavaScript modules, no build step:
// page.js (what every view uses), models.js (the served models and their prototype listings), classify.js, gallery.js
// and training.js (a view each); this one shows the view the address names and starts the page.
import { $, VIEWS, currentView, clearError, showPendingError } from "./page.js";
import { loadModels } from "./models.js";
import { wireClassify } from "./classify.js";
import { renderGallery, wireGallery } from "./gallery.js";
import { openTraining, wireTraining } from "./training.js";

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
  showPendingError(current);
  // Coming back to a view, the models are listed again: a version published meanwhile is the one shown.
  const models = clear && current !== "training" ? loadModels() : Promise.resolve();
  if (current === "gallery") models.then(renderGallery);
  if (current === "training") openTraining();
}

// The skip link moves the focus to the view shown; followed as a link, #main would name no view and show the classify one.
document.querySelector(".skip-link").addEventListener("click", (event) => {
  event.preventDefault();
  $("main").focus();
});
wireClassify();
wireGallery();
wireTraining();
window.addEventListener("hashchange", () => showView());
loadModels().then(() => showView(false));
