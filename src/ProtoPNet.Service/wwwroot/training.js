// The training view: with the admin key, submit a training job (a recipe and its data), follow its progress and
// accuracy curve as it trains, open the model it publishes, and cancel or remove jobs.
import { $, el, percent, getJson, fetchWithKey, showProblem, clearError, isProblem, whileBusy } from "./page.js";

// The admin key lives in sessionStorage: it is sent only to this service, and forgotten when the tab is closed.
const KEY_STORAGE = "protopnet.adminApiKey";
const SVG = "http://www.w3.org/2000/svg";
// job: the job shown; stream: the AbortController of its progress stream; offering: the version whose link is awaited.
const training = { options: null, dataFolders: null, chosenData: null, job: null, stream: null, offering: null };

const adminKey = () => sessionStorage.getItem(KEY_STORAGE);

/** fetch with the admin key; a 401 or 403 forgets the key and asks for it again. */
const adminFetch = (url, init = {}) => fetchWithKey(url, init, KEY_STORAGE, showTrainingForms);

function showTrainingForms() {
  const hasKey = Boolean(adminKey());
  $("training-key-form").hidden = hasKey;
  $("training-ready").hidden = !hasKey;
}

export async function openTraining() {
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
  // One job per press: a double click would queue two.
  await whileBusy($("training-submit"), submitJob);
}

async function submitJob() {
  clearError();
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
  try {
    const response = await adminFetch("/training/jobs", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    showJob(await response.json());
    followJob(response.headers.get("Location"));
  } catch (problem) {
    showProblem(problem, "The job cannot be submitted", "training");
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
  const focused = focusedAction();
  $("training-jobs-table").tBodies[0].replaceChildren(...jobs.map(jobRow));
  refocusAction(focused);
  $("training-jobs-listed").textContent = String(LISTED_JOBS);
  $("training-jobs-more").hidden = jobs.length < LISTED_JOBS;
}

function jobRow(job) {
  const action = (text, run) => {
    const button = el("button", { type: "button", class: "link-button", text, "data-action": text.toLowerCase(),
      "aria-label": `${text} ${job.name} (${job.id})` });
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

/** The job row and action of the button that has the focus, if one in the jobs table has: a row drawn again keeps it. */
function focusedAction() {
  const focused = document.activeElement;
  const row = focused && focused.closest && focused.closest("#training-jobs-table tr[data-job]");
  return row ? { job: row.dataset.job, action: focused.dataset.action } : null;
}

/** Gives the focus back to that action of that job's new row; to its first action if that one is gone (Cancel became
 * Remove), and to the table's heading if the job is gone. */
function refocusAction(focused) {
  if (!focused) return;
  const row = document.querySelector(`#training-jobs-table tr[data-job="${CSS.escape(focused.job)}"]`);
  const target = row && (row.querySelector(`button[data-action="${focused.action}"]`) || row.querySelector("button"));
  if (target) target.focus();
  else {
    $("training-jobs-title").tabIndex = -1;
    $("training-jobs-title").focus();
  }
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
  if (row && (before !== statusWord(job) || warned !== (job.warnings || []).length)) {
    const focused = focusedAction();
    row.replaceWith(jobRow(job));
    refocusAction(focused);
  }
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
  // The points' values are shown on hover only: the latest epoch's are part of the chart's name for screen readers.
  const latest = history[history.length - 1];
  const words = [["testAccuracy", "test"], ["trainAccuracy", "training"]]
    .filter(([key]) => latest && typeof latest[key] === "number").map(([key, what]) => `${what} accuracy ${percent(latest[key])}`);
  $("training-curve-latest").textContent = latest ? `Epoch ${latest.epoch} of ${epochs}${words.length ? ": " + words.join(", ") : ""}.` : "";
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

export function wireTraining() {
  $("training-key-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY_STORAGE, $("training-key").value);
    $("training-key").value = "";
    clearError();
    await openTraining();
    // The form that had the focus is gone: on to the first field of the next step (or the key field again, if refused).
    if (!$("training-ready").hidden) $("training-preset").focus();
    else if (!$("training-key-form").hidden) $("training-key").focus();
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
