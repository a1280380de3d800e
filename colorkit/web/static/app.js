// colorkit's page: upload or drop an image, show it gray and colorized, click hints, download.
// The state lives in one object; every change that affects the result calls colorize() again.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { file: null, hints: [], takesHints: false, running: false, again: false, resultUrl: null };

function setStatus(text, kind) {
  $("status").textContent = text;
  document.body.dataset.state = kind;
}

async function loadModelInfo() {
  try {
    const reply = await fetch("/api/models");
    const model = (await reply.json()).models[0];
    state.takesHints = model.takes_hints;
    const size = model.working_size.join("x");
    $("model-info").textContent = `Model ${model.name} (${model.source}), working size ${size}` +
      (model.takes_hints ? ", takes colour hints" : "");
    $("hint-tools").hidden = !model.takes_hints;
  } catch (error) {
    $("model-info").textContent = "The server did not describe its model.";
  }
}

function chooseFile(file) {
  if (!file) return;
  state.file = file;
  state.hints = [];
  $("gray-image").src = URL.createObjectURL(file);
  drawMarkers();
  colorize();
}

// One request at a time; a change made meanwhile triggers one more when it ends.
async function colorize() {
  if (!state.file) return;
  if (state.running) { state.again = true; return; }
  state.running = true;
  setStatus("Colorizing\u2026", "working");
  const form = new FormData();
  form.append("file", state.file);
  if (state.hints.length) form.append("hints", JSON.stringify(state.hints));
  try {
    const reply = await fetch("/api/colorize", { method: "POST", body: form });
    if (!reply.ok) {
      const problem = await reply.json().catch(() => ({ detail: reply.statusText }));
      setStatus(`Not colorized (${reply.status}): ${problem.detail}`, "error");
    } else {
      showResult(await reply.blob());
    }
  } catch (error) {
    setStatus(`The server could not be reached: ${error}`, "error");
  } finally {
    state.running = false;
    if (state.again) { state.again = false; colorize(); }
  }
}

function showResult(blob) {
  if (state.resultUrl) URL.revokeObjectURL(state.resultUrl);
  state.resultUrl = URL.createObjectURL(blob);
  const image = $("result-image");
  image.onload = () => setStatus("Done.", "done");
  image.src = state.resultUrl;
  const link = $("download");
  link.href = state.resultUrl;
  link.download = (state.file.name.replace(/\.[^.]*$/, "") || "image") + "-colorized.png";
  link.hidden = false;
}

// A click on the gray image adds a hint at the image's own pixel coordinates.
function addHint(event) {
  const image = $("gray-image");
  if (!state.takesHints || !state.file || !image.naturalWidth) return;
  const box = image.getBoundingClientRect();
  const x = Math.min(image.naturalWidth - 1, Math.floor((event.clientX - box.left) * image.naturalWidth / box.width));
  const y = Math.min(image.naturalHeight - 1, Math.floor((event.clientY - box.top) * image.naturalHeight / box.height));
  const size = Math.max(1, Math.min(64, parseInt($("hint-size").value, 10) || 1));
  state.hints.push({ x: Math.max(0, x), y: Math.max(0, y), rgb: hexToRgb($("hint-colour").value), size });
  drawMarkers();
  colorize();
}

function hexToRgb(hex) {
  return [1, 3, 5].map((start) => parseInt(hex.slice(start, start + 2), 16));
}

function drawMarkers() {
  const layer = $("markers");
  const image = $("gray-image");
  layer.replaceChildren();
  for (const hint of state.hints) {
    const marker = document.createElement("div");
    marker.className = "marker";
    marker.style.left = `${(100 * (hint.x + 0.5)) / image.naturalWidth}%`;
    marker.style.top = `${(100 * (hint.y + 0.5)) / image.naturalHeight}%`;
    marker.style.width = `${(100 * hint.size) / image.naturalWidth}%`;
    marker.style.height = `${(100 * hint.size) / image.naturalHeight}%`;
    marker.style.background = `rgb(${hint.rgb.join(",")})`;
    layer.append(marker);
  }
  const count = state.hints.length;
  $("hint-count").textContent = count ? `${count} hint${count > 1 ? "s" : ""}` : "no hints";
}

function listen() {
  $("file-input").addEventListener("change", (event) => chooseFile(event.target.files[0]));
  const zone = $("drop-zone");
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    chooseFile(event.dataTransfer.files[0]);
  });
  $("gray-image").addEventListener("click", addHint);
  $("gray-image").addEventListener("load", drawMarkers);
  $("clear-hints").addEventListener("click", () => { state.hints = []; drawMarkers(); colorize(); });
}

listen();
loadModelInfo();
