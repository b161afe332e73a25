// nmfsep explore: asks the local server for numbers, draws them on canvases. No network beyond it.
"use strict";

const $ = (id) => document.getElementById(id);
const page = { state: null, stepQueue: 0, stepping: false, playing: false, kWanted: null, kBusy: false };

// --- talking to the server ------------------------------------------------------------------
async function api(path, body) {
  const options = body === undefined ? {} : body instanceof FormData ? { method: "POST", body }
    : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  let response, data;
  try {
    response = await fetch(path, options);
  } catch (error) {
    throw new Error("the nmfsep explore server does not answer (was it stopped?)");
  }
  try { data = await response.json(); } catch (error) { data = { error: `${response.status} ${response.statusText}` }; }
  if (!response.ok || data.error) throw new Error(data.error || response.statusText);
  return data;
}

function message(text, kind = "error") {
  const box = $("message");
  box.textContent = text;
  box.className = kind === "error" ? "" : "info";
  box.hidden = !text;
}

// Run one interaction of a view: the section dims, the time taken is shown, errors go to the banner.
async function run(view, took, work) {
  const section = $(view);
  section.classList.add("busy");
  const started = performance.now();
  // anything over a second shows an elapsed counter in the view, every time
  const ticker = setInterval(() => {
    $(took).textContent = `computing… ${Math.floor((performance.now() - started) / 1000)} s`;
  }, 1000);
  try {
    await work();
    $(took).textContent = `(${((performance.now() - started) / 1000).toFixed(2)} s)`;
    section.dataset.took = ((performance.now() - started) / 1000).toFixed(3);
    return true;
  } catch (error) {
    message(error.message);
    return false;
  } finally {
    clearInterval(ticker);
    section.classList.remove("busy");
  }
}

// --- drawing ----------------------------------------------------------------------------------
function lut(anchors) {
  const table = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) {
    const x = (i / 255) * (anchors.length - 1), j = Math.min(Math.floor(x), anchors.length - 2), f = x - j;
    for (let c = 0; c < 3; c++) table[3 * i + c] = Math.round(anchors[j][c] * (1 - f) + anchors[j + 1][c] * f);
  }
  return table;
}
const MAPS = {
  magma: lut([[0, 0, 4], [81, 18, 124], [183, 55, 121], [252, 137, 97], [252, 253, 191]]),
  viridis: lut([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]]),
  signed: lut([[5, 48, 97], [67, 147, 195], [247, 247, 247], [214, 96, 77], [103, 0, 31]]),
  grey: lut([[255, 255, 255], [20, 20, 20]]),
};

// Paint an image dict {rows, cols, data: base64 bytes 0-255, row 0 at the bottom} over a canvas.
function paint(canvas, image, map = "magma") {
  const bytes = Uint8Array.from(atob(image.data), (c) => c.charCodeAt(0));
  const off = document.createElement("canvas");
  off.width = image.cols; off.height = image.rows;
  const context = off.getContext("2d"), pixels = context.createImageData(image.cols, image.rows), table = MAPS[map];
  for (let r = 0; r < image.rows; r++) {
    for (let c = 0; c < image.cols; c++) {
      const v = bytes[r * image.cols + c], o = ((image.rows - 1 - r) * image.cols + c) * 4;
      pixels.data[o] = table[3 * v]; pixels.data[o + 1] = table[3 * v + 1]; pixels.data[o + 2] = table[3 * v + 2];
      pixels.data[o + 3] = 255;
    }
  }
  context.putImageData(pixels, 0, 0);
  const target = canvas.getContext("2d");
  target.imageSmoothingEnabled = false;
  target.clearRect(0, 0, canvas.width, canvas.height);
  target.drawImage(off, 0, 0, canvas.width, canvas.height);
}

function format(value) {
  if (!isFinite(value) || (Number.isInteger(value) && Math.abs(value) < 1e5)) return String(value);
  const a = Math.abs(value);
  return a !== 0 && (a >= 1e5 || a < 1e-3) ? value.toExponential(3) : value.toPrecision(4);
}

// A line plot of y against x with labelled ends of both axes; mark: index of a point to circle.
function plot(canvas, xs, ys, { xlabel = "", mark = null, dots = true } = {}) {
  const g = canvas.getContext("2d"), W = canvas.width, H = canvas.height, left = 64, right = 10, top = 10, bottom = 34;
  g.clearRect(0, 0, W, H);
  g.fillStyle = "#fff"; g.fillRect(0, 0, W, H);
  if (!ys.length) return;
  const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
  const sx = (x) => left + (x1 === x0 ? 0.5 : (x - x0) / (x1 - x0)) * (W - left - right);
  const sy = (y) => top + (y1 === y0 ? 0.5 : 1 - (y - y0) / (y1 - y0)) * (H - top - bottom);
  g.strokeStyle = "#999"; g.lineWidth = 1;
  g.beginPath(); g.moveTo(left, top); g.lineTo(left, H - bottom); g.lineTo(W - right, H - bottom); g.stroke();
  g.fillStyle = "#333"; g.font = "11px sans-serif";
  g.textAlign = "right"; g.fillText(format(y1), left - 4, top + 8); g.fillText(format(y0), left - 4, H - bottom);
  g.textAlign = "center"; g.fillText(format(x0), left, H - bottom + 14); g.fillText(format(x1), W - right - 8, H - bottom + 14);
  g.fillText(xlabel, (left + W - right) / 2, H - 4);
  g.strokeStyle = "#222"; g.lineWidth = 2; g.beginPath();
  xs.forEach((x, i) => (i ? g.lineTo(sx(x), sy(ys[i])) : g.moveTo(sx(x), sy(ys[i]))));
  g.stroke();
  if (dots && xs.length <= 60) {
    g.fillStyle = "#222";
    xs.forEach((x, i) => { g.beginPath(); g.arc(sx(x), sy(ys[i]), 3, 0, 2 * Math.PI); g.fill(); });
  }
  if (mark !== null && mark >= 0 && mark < xs.length) {
    g.strokeStyle = "#d62728"; g.lineWidth = 3; g.beginPath(); g.arc(sx(xs[mark]), sy(ys[mark]), 9, 0, 2 * Math.PI); g.stroke();
  }
}

// --- the excerpt --------------------------------------------------------------------------------
function showState(state) {
  page.state = state;
  const e = state.excerpt, limits = state.limits;
  const where = e.kind === "playground" ? `the playground: ${e.sources.length} synthetic tones (${e.sources.map((s) => s.f0.toFixed(0) + " Hz").join(", ")})`
    : `${e.name}: ${e.start.toFixed(1)}–${(e.start + e.duration).toFixed(1)} s of ${e.total.toFixed(1)} s`;
  $("source").textContent = `Exploring ${where}, ${e.sample_rate} Hz, ${e.channels} channel${e.channels > 1 ? "s" : ""}`;
  $("excerpt-controls").hidden = e.kind === "playground";
  $("excerpt-duration").max = limits.max_excerpt;
  $("excerpt-start").value = e.start; if (e.kind !== "playground") $("excerpt-duration").value = e.duration;
  $("excerpt-note").firstChild.textContent = `Long recordings are explored on an excerpt (at most ${limits.max_excerpt} s; uploads up to ${limits.max_upload_mb} MB): move its start to explore another part. `;
  const kMax = e.k_max ?? limits.k_max;     // the excerpt's own range (a short one has fewer frames)
  for (const id of ["k-slider", "step-k", "pca-k", "kmeans-k", "deep-k1"]) {
    $(id).max = kMax;
    if (Number($(id).value) > kMax) $(id).value = kMax;
  }
  $("deep-k2").max = Math.max(kMax - 1, 1);
  if (Number($("deep-k2").value) >= Number($("deep-k1").value)) $("deep-k2").value = Math.max(Number($("deep-k1").value) - 1, 1);
  clearViews();
  $("playground").hidden = e.kind !== "playground";
  $("sep-grouping").value = e.kind === "playground" ? "none" : "auto";
  if (e.kind === "playground") playgroundSliders(e.sources);
  page.stepState = null;
  $("step-iteration").textContent = "–"; $("step-loss").textContent = "–";
}

// A new excerpt: every view's pictures, numbers and players belonged to the previous one.
function clearViews() {
  for (const canvas of document.querySelectorAll("main canvas")) canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
  for (const id of ["k-loss", "step-iteration", "step-loss"]) $(id).textContent = "–";
  for (const id of ["pca-summary", "kmeans-summary", "k-took", "step-took", "pca-took", "kmeans-took", "deep-took", "sep-took"]) $(id).textContent = "";
  for (const row of $("deep-table").tBodies[0].rows) for (const cell of [...row.cells].slice(1)) cell.textContent = "–";
  $("sep-mixture").replaceChildren(); $("sep-stems").replaceChildren();
  for (const view of document.querySelectorAll("main section")) for (const key of Object.keys(view.dataset)) delete view.dataset[key];
}

async function loadState() {
  showState(await api("/api/state"));
}

async function newExcerpt(request) {
  message("computing the new excerpt…", "info");
  try {
    const state = await request();
    showState(state);
    message(state.excerpt.note || "", "info");
    refreshK();
  } catch (error) {
    message(error.message);
  }
}

$("upload-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const file = $("upload-file").files[0];
  if (!file) { message("choose an audio file first"); return; }
  const limit = page.state ? page.state.limits.max_upload_mb : 50;
  if (file.size > limit * 1048576) {
    message(`${file.name}: ${(file.size / 1048576).toFixed(1)} MB is more than the ${limit} MB this page takes; cut an excerpt first, or run nmfsep explore FILE`);
    return;
  }
  const form = new FormData();
  form.append("file", file);
  newExcerpt(() => api("/api/upload", form));
});
$("excerpt-button").addEventListener("click", () => newExcerpt(() => api("/api/excerpt", {
  start: Number($("excerpt-start").value), duration: Number($("excerpt-duration").value) })));
$("playground-button").addEventListener("click", () => newExcerpt(() => api("/api/playground", {})));

// --- 1. k -------------------------------------------------------------------------------------
async function refreshK() {
  page.kWanted = Number($("k-slider").value);
  $("k-value").textContent = page.kWanted;
  if (page.kBusy) return;
  page.kBusy = true;
  try {
    while (page.kWanted !== null) {
      const k = page.kWanted;
      page.kWanted = null;
      await run("view-k", "k-took", async () => {
        const d = await api("/api/k", { k });
        paint($("k-V"), d.V); paint($("k-WH"), d.WH); paint($("k-W"), d.W, "viridis"); paint($("k-H"), d.H, "viridis");
        plot($("k-curve"), d.ks, d.losses, { xlabel: "k", mark: d.suggested === null ? null : d.suggested - 1 });
        $("k-loss").textContent = format(d.loss);
        $("axes-note").textContent = `In every picture frequency rises upward on a log scale from ${Math.round(d.axes.f_low)} Hz ` +
          `to ${(d.axes.f_high / 1000).toFixed(1)} kHz and time runs left to right over the ${d.axes.duration} s excerpt; ` +
          "spectra are in dB, each basis and activation is scaled to its own peak.";
        $("view-k").dataset.k = d.k; $("view-k").dataset.loss = d.loss;
      });
    }
  } finally {
    page.kBusy = false;
  }
}
$("k-slider").addEventListener("input", refreshK);

// --- 2. Step ----------------------------------------------------------------------------------
function showStep(d) {
  $("step-iteration").textContent = d.iteration;
  $("step-loss").textContent = d.loss.toPrecision(6);
  const view = $("view-step");
  view.dataset.iteration = d.iteration; view.dataset.loss = d.loss; view.dataset.losses = JSON.stringify(d.losses);
  plot($("step-curve"), d.losses.map((_, i) => i), d.losses, { xlabel: "updates" });
  paint($("step-W"), d.W, "viridis"); paint($("step-H"), d.H, "viridis"); paint($("step-WH"), d.WH);
}

async function startStep() {
  return run("view-step", "step-took", async () => {
    const d = await api("/api/step/start", { k: Number($("step-k").value), beta: $("step-beta").value, init: $("step-init").value });
    page.stepState = d;
    showStep(d);
  });
}

async function drainSteps() {
  if (page.stepping) return;
  page.stepping = true;
  try {
    while (page.stepQueue > 0 || page.playing) {
      if (!page.stepState && !(await startStep())) { page.stepQueue = 0; page.playing = false; break; }
      const ok = await run("view-step", "step-took", async () => {
        page.stepState = await api("/api/step", { updates: 1 });
        showStep(page.stepState);
      });
      page.stepQueue = Math.max(page.stepQueue - 1, 0);
      if (!ok) { page.stepQueue = 0; page.playing = false; }
    }
  } finally {
    page.stepping = false;
    $("step-play").textContent = "Play";
  }
}
$("step-start").addEventListener("click", () => { page.stepQueue = 0; page.playing = false; startStep(); });
$("step-button").addEventListener("click", () => { page.stepQueue += 1; drainSteps(); });
$("step-play").addEventListener("click", () => {
  page.playing = !page.playing;
  $("step-play").textContent = page.playing ? "Pause" : "Play";
  drainSteps();
});
for (const id of ["step-k", "step-beta", "step-init"]) $(id).addEventListener("change", () => { page.stepState = null; });

// --- 3. PCA -----------------------------------------------------------------------------------
$("pca-button").addEventListener("click", () => run("view-pca", "pca-took", async () => {
  const d = await api("/api/pca", { k: Number($("pca-k").value) });
  paint($("pca-components"), d.pca_components, "signed"); paint($("pca-scores"), d.pca_scores, "signed");
  paint($("pca-W"), d.nmf_W, "viridis"); paint($("pca-H"), d.nmf_H, "viridis");
  $("pca-summary").textContent = `PCA: ${d.k} components explain ${(100 * d.explained_total).toFixed(1)}% of the variance; ` +
    `${(100 * d.negative).toFixed(0)}% of their entries are negative. NMF: every entry ≥ 0.`;
}));

// --- 4. k-means -------------------------------------------------------------------------------
$("kmeans-button").addEventListener("click", () => run("view-kmeans", "kmeans-took", async () => {
  const d = await api("/api/kmeans", { k: Number($("kmeans-k").value) });
  paint($("kmeans-W"), d.kmeans_W, "viridis"); paint($("kmeans-H"), d.kmeans_H, "grey");
  paint($("kmeans-nmf-W"), d.nmf_W, "viridis"); paint($("kmeans-nmf-H"), d.nmf_H, "grey");
  $("kmeans-summary").textContent = `||V − WH||²: k-means ${format(d.kmeans_objective)} (${d.kmeans_iterations} iterations; ` +
    `frames per centroid ${d.frames.join(", ")}), NMF ${format(d.nmf_objective)}`;
}));

// --- 5. Deep NMF ------------------------------------------------------------------------------
$("deep-button").addEventListener("click", () => run("view-deep", "deep-took", async () => {
  const d = await api("/api/deep", { k1: Number($("deep-k1").value), k2: Number($("deep-k2").value), beta: $("deep-beta").value });
  const rows = $("deep-table").tBodies[0].rows;
  [d.one, d.two].forEach((s, i) => {
    rows[i].cells[1].textContent = format(s.loss);
    rows[i].cells[2].textContent = s.sparsity_W.toFixed(3);
    rows[i].cells[3].textContent = s.sparsity_H.toFixed(3);
  });
  paint($("deep-one-W"), d.one_W, "viridis"); paint($("deep-one-H"), d.one_H, "viridis");
  paint($("deep-W1"), d.two_W1, "viridis"); paint($("deep-W2"), d.two_W2, "grey"); paint($("deep-W"), d.two_W, "viridis");
}));

// --- 6. Separate and listen -------------------------------------------------------------------
function showSeparation(d) {
  paint($("sep-V"), d.V);
  $("sep-mixture").replaceChildren(player("mixture", d.mixture));
  const stems = $("sep-stems");
  stems.replaceChildren();
  d.stems.forEach((stem) => {
    const box = document.createElement("div");
    box.className = "stem";
    const title = document.createElement("div");
    const score = d.truth ? d.truth.find((t) => t.stem === stem.name) : null;
    title.textContent = `${stem.name}: ${stem.components.length} of ${d.n_components} components` +
      (score ? `, SI-SDR ${score.si_sdr.toFixed(1)} dB against ${score.name} (the mixture: ${score.mixture_si_sdr.toFixed(1)} dB)` : "");
    const canvas = document.createElement("canvas");
    canvas.width = 480; canvas.height = 120;
    box.append(title, player(stem.name, stem.audio), canvas);
    const caption = document.createElement("div");
    caption.className = "note"; caption.textContent = "its mask (white 0, black 1)";
    box.append(caption);
    stems.append(box);
    paint(canvas, stem.mask, "grey");
  });
  if (d.truth) {
    d.truth.forEach((t) => {
      const box = document.createElement("div");
      box.className = "stem";
      box.append(document.createTextNode(`${t.name}: ${t.f0.toFixed(1)} Hz, a note every ${t.period} s`), player(t.name, t.audio));
      stems.append(box);
    });
  } else if (page.state && page.state.excerpt.kind === "playground") {
    const note = document.createElement("p");
    note.className = "note"; note.textContent = "SI-SDR needs as many sources as the playground has tones.";
    stems.append(note);
  }
}

function player(name, src) {
  const audio = document.createElement("audio");
  audio.controls = true; audio.preload = "metadata"; audio.src = src; audio.title = name;
  return audio;
}

$("sep-button").addEventListener("click", () => run("view-separate", "sep-took", async () => {
  showSeparation(await api("/api/separate", { n_sources: Number($("sep-n").value), grouping: $("sep-grouping").value }));
}));

function playgroundSliders(sources) {
  const box = $("play-sliders");
  if (box.dataset.n === String(sources.length)) return;
  box.dataset.n = String(sources.length);
  box.replaceChildren();
  sources.forEach((s, i) => {
    const row = document.createElement("div");
    row.className = "tone";
    box.append(row);
    for (const [key, min, max, step, unit] of [["f0", 40, 2000, 1, "Hz"], ["period", 0.1, 2, 0.05, "s"]]) {
      const label = document.createElement("label");
      const input = document.createElement("input");
      Object.assign(input, { type: "range", min, max, step, value: s[key], id: `play-${key}-${i}` });
      const shown = document.createElement("output");
      shown.textContent = `${s[key]} ${unit}`;
      input.addEventListener("input", () => { shown.textContent = `${input.value} ${unit}`; });
      input.addEventListener("change", playgroundChanged);
      label.append(`tone ${i + 1} ${key === "f0" ? "pitch" : "rhythm"} `, input, " ", shown);
      row.append(label);
    }
  });
}

async function playgroundChanged() {
  const n = Number($("play-n").value);
  const f0s = [], periods = [];
  for (let i = 0; i < n; i++) {
    f0s.push(Number($(`play-f0-${i}`)?.value ?? [220, 587.33, 830.61][i]));
    periods.push(Number($(`play-period-${i}`)?.value ?? [0.5, 0.7, 0.9][i]));
  }
  $("sep-n").value = n;
  await run("view-separate", "sep-took", async () => {
    const d = await api("/api/playground", { n_sources: n, f0s, periods, separate: true, grouping: $("sep-grouping").value });
    showState(d);
    showSeparation(d.separation);
  });
  refreshK();
}
$("play-n").addEventListener("change", () => { $("play-sliders").dataset.n = ""; playgroundChanged(); });

loadState().then(refreshK).catch((error) => message(error.message));
