// jaxcolor's hint-painting page: plain JavaScript, no CDN, no build step.
// Hints live in an RGBA buffer written pixel by pixel (alpha 0 or 255 only), so a stroke has
// hard edges: canvas paths would anti-alias, and their fringe of faint colours would reach the
// model as wrong hints. The hint layer is sent as a PNG of the sketch's size; transparent
// pixels are white paper to the server's decoder, as in `python -m jaxcolor.colorize --hints`:
// no hint for points/strokes models; for blur models, paper that the painted colours are spread
// over (the "show colour map" toggle draws the map the model receives, from POST /v1/hints).
"use strict";

const $ = (id) => document.getElementById(id);
// Read back often (line-art check, eyedropper, tests): keep these canvases in CPU memory.
const ctx2d = (canvas) => canvas.getContext("2d", { willReadFrequently: true });
const state = {
  info: null,
  sketchBlob: null,      // what is sent as `sketch`
  referenceBlob: null,   // `reference` (reference models) or `hints` (image hints: palette)
  width: 0, height: 0,
  hints: null,           // ImageData of the hint layer
  undo: [], redo: [],
  tool: "brush",
  recent: [],
  busy: false, again: false,
  mapBusy: false, mapAgain: false, mapMessage: null,
  resultUrl: null,
  requests: 0,
};
const MAX_UNDO = 50;

function message(text) { $("message").textContent = text || ""; }

async function errorText(response) {
  try {
    const body = await response.json();
    return `${response.status}: ${body.detail || JSON.stringify(body)}`;
  } catch (e) {
    return `${response.status}: ${response.statusText}`;
  }
}

async function loadInfo() {
  const response = await fetch("/v1/info");
  const info = await response.json();
  state.info = info;
  const [h, w] = info.image_size;
  $("model-info").textContent =
    `${info.generator}, hints: ${info.hints}, trained at ${w}x${h}` +
    (info.reference ? ", reference-guided" : "") + ` (jaxcolor ${info.version})`;
  // What the model accepts comes from /v1/info (its hint method's spec), never from its name.
  const paints = info.hint_input === "drawing";
  $("tools").hidden = !paints;
  $("hint-canvas").hidden = !paints;
  document.querySelector('[data-tool="point"]').hidden = !info.point_hints;
  $("map-label").hidden = !info.hint_map;
  $("hint-help").textContent = info.hints_image ? `Your painting is sent as ${info.hints_image}.` : "";
  if (info.reference || info.hint_input === "image") {
    $("reference-label").hidden = false;
    $("reference-figure").hidden = false;
    const word = info.reference ? "Reference" : info.hint_label;
    $("reference-word").textContent = word;
    $("reference-caption").textContent = word;
  }
}

// ---- images ---------------------------------------------------------------------------------

async function bitmapOf(blob) {
  try {
    return await createImageBitmap(blob);
  } catch (e) {
    return null;
  }
}

function isColourful(canvas) {
  const data = ctx2d(canvas).getImageData(0, 0, canvas.width, canvas.height).data;
  let colourful = 0;
  for (let i = 0; i < data.length; i += 4) {
    const r = data[i], g = data[i + 1], b = data[i + 2];
    if (Math.max(r, g, b) - Math.min(r, g, b) > 40) colourful++;
  }
  return colourful > 0.02 * (data.length / 4);
}

async function setSketch(blob, { keepHints = false } = {}) {
  message("");
  const bitmap = await bitmapOf(blob);
  if (!bitmap) {
    // The browser cannot show it; the server's decoder says why it cannot be used.
    const form = new FormData();
    form.append("sketch", blob, blob.name || "sketch");
    const response = await post("/v1/colorize?format=json", form);
    message(response.ok ? "The browser cannot display this image." : await errorText(response));
    return;
  }
  const sameSize = bitmap.width === state.width && bitmap.height === state.height;
  state.sketchBlob = blob;
  state.width = bitmap.width;
  state.height = bitmap.height;
  for (const id of ["sketch-canvas", "map-canvas", "hint-canvas", "result-canvas"]) {
    $(id).width = bitmap.width;
    $(id).height = bitmap.height;
  }
  ctx2d($("sketch-canvas")).drawImage(bitmap, 0, 0);
  if (!(keepHints && sameSize)) {
    state.hints = new ImageData(bitmap.width, bitmap.height);
    state.undo = [];
    state.redo = [];
  }
  drawHints();
  $("extract").hidden = !isColourful($("sketch-canvas"));
  $("colorize").disabled = false;
  $("download").hidden = true;
  hintsChanged();
}

async function setReference(blob) {
  message("");
  const bitmap = await bitmapOf(blob);
  state.referenceBlob = blob;
  const canvas = $("reference-canvas");
  if (bitmap) {
    canvas.width = bitmap.width;
    canvas.height = bitmap.height;
    ctx2d(canvas).drawImage(bitmap, 0, 0);
  }
}

async function extractLineArt() {
  const form = new FormData();
  form.append("image", state.sketchBlob, "image.png");
  const response = await post("/v1/sketch", form);
  if (!response.ok) return message(await errorText(response));
  const blob = await response.blob();
  await setSketch(new File([blob], "line-art.png", { type: "image/png" }), { keepHints: true });
  $("extract").hidden = true;
}

// ---- hint painting --------------------------------------------------------------------------

function drawHints() {
  if (state.hints) $("hint-canvas").getContext("2d").putImageData(state.hints, 0, 0);
  $("undo").disabled = state.undo.length === 0;
  $("redo").disabled = state.redo.length === 0;
}

function hexToRgb(hex) {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

function rgbToHex([r, g, b]) {
  return "#" + [r, g, b].map((v) => v.toString(16).padStart(2, "0")).join("");
}

function setPixel(x, y, rgb) {  // rgb null: erase
  if (x < 0 || y < 0 || x >= state.width || y >= state.height) return;
  const d = state.hints.data, i = (y * state.width + x) * 4;
  if (rgb) { d[i] = rgb[0]; d[i + 1] = rgb[1]; d[i + 2] = rgb[2]; d[i + 3] = 255; }
  else { d[i] = d[i + 1] = d[i + 2] = d[i + 3] = 0; }
}

function stamp(cx, cy, rgb) {
  const size = Number($("brush-size").value);
  if (state.tool === "point") {  // a size x size square, as training's `points` patches
    const s = state.info.point_size, o = Math.floor((s - 1) / 2);
    for (let y = 0; y < s; y++) for (let x = 0; x < s; x++) setPixel(cx - o + x, cy - o + y, rgb);
    return;
  }
  const r = (size - 1) / 2;
  const lo = -Math.floor(r), hi = Math.ceil(r);
  for (let dy = lo; dy <= hi; dy++) {
    for (let dx = lo; dx <= hi; dx++) {
      if (dx * dx + dy * dy <= r * r + 0.5) setPixel(cx + dx, cy + dy, rgb);
    }
  }
}

function line(x0, y0, x1, y1, rgb) {
  const steps = Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0), 1);
  for (let i = 0; i <= steps; i++) {
    stamp(Math.round(x0 + ((x1 - x0) * i) / steps), Math.round(y0 + ((y1 - y0) * i) / steps), rgb);
  }
}

function canvasXY(event, canvas) {
  const rect = canvas.getBoundingClientRect();  // border box: skip the border
  const left = rect.left + canvas.clientLeft, top = rect.top + canvas.clientTop;
  const x = Math.floor(((event.clientX - left) / canvas.clientWidth) * canvas.width);
  const y = Math.floor(((event.clientY - top) / canvas.clientHeight) * canvas.height);
  return [Math.min(Math.max(x, 0), canvas.width - 1), Math.min(Math.max(y, 0), canvas.height - 1)];
}

function pickColour(event, canvas) {
  const [x, y] = canvasXY(event, canvas);
  const d = ctx2d(canvas).getImageData(x, y, 1, 1).data;
  setColour(rgbToHex([d[0], d[1], d[2]]));
}

function setColour(hex) { $("color").value = hex; }

function rememberColour(hex) {
  state.recent = [hex, ...state.recent.filter((c) => c !== hex)].slice(0, 10);
  const box = $("recent");
  box.replaceChildren(...state.recent.map((c) => {
    const b = document.createElement("button");
    b.style.background = c;
    b.title = c;
    b.addEventListener("click", () => setColour(c));
    return b;
  }));
}

function pushUndo() {
  state.undo.push(new ImageData(new Uint8ClampedArray(state.hints.data), state.width, state.height));
  if (state.undo.length > MAX_UNDO) state.undo.shift();
  state.redo = [];
}

function restore(from, to) {
  if (!from.length) return;
  to.push(state.hints);
  state.hints = from.pop();
  drawHints();
  hintsChanged();
}

// After a finished change of the hint layer (not during a stroke): refresh what depends on it.
function hintsChanged() {
  if ($("show-map").checked) refreshMap();
}

let stroke = null;
function onDown(event) {
  if (!state.hints || state.tool === "eyedropper") {
    if (state.tool === "eyedropper" && state.hints) pickColour(event, $("sketch-canvas"));
    return;
  }
  event.preventDefault();
  $("hint-canvas").setPointerCapture(event.pointerId);
  pushUndo();
  const [x, y] = canvasXY(event, $("hint-canvas"));
  const rgb = state.tool === "eraser" ? null : hexToRgb($("color").value);
  stroke = { x, y, rgb };
  stamp(x, y, rgb);
  drawHints();
}

function onMove(event) {
  if (!stroke || state.tool === "point") return;
  const [x, y] = canvasXY(event, $("hint-canvas"));
  line(stroke.x, stroke.y, x, y, stroke.rgb);
  stroke.x = x;
  stroke.y = y;
  drawHints();
}

function onUp() {
  if (!stroke) return;
  if (stroke.rgb) rememberColour(rgbToHex(stroke.rgb));
  stroke = null;
  hintsChanged();
  if ($("live").checked) colorize();
}

function exportHints() {
  const points = [];
  const d = state.hints.data;
  for (let y = 0; y < state.height; y++) {
    for (let x = 0; x < state.width; x++) {
      const i = (y * state.width + x) * 4;
      if (d[i + 3] === 255) points.push({ x, y, color: rgbToHex([d[i], d[i + 1], d[i + 2]]) });
    }
  }
  const blob = new Blob([JSON.stringify(points)], { type: "application/json" });
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = "hints.json";
  a.click();
}

async function importHints(file) {
  let points;
  try {
    points = JSON.parse(await file.text());
    if (!Array.isArray(points)) throw new Error("not a list");
  } catch (e) {
    return message(`Hints file ${file.name} is not a JSON list of {x, y, color} points (${e.message}).`);
  }
  pushUndo();
  for (const p of points) {
    if (Number.isInteger(p.x) && Number.isInteger(p.y) && /^#[0-9a-f]{6}$/i.test(p.color)) {
      setPixel(p.x, p.y, hexToRgb(p.color));
    }
  }
  drawHints();
  hintsChanged();
}

// ---- colorize -------------------------------------------------------------------------------

async function post(url, form) {
  state.requests++;
  return fetch(url, { method: "POST", body: form });
}

function hintsBlob() {
  const canvas = document.createElement("canvas");
  canvas.width = state.width;
  canvas.height = state.height;
  canvas.getContext("2d").putImageData(state.hints, 0, 0);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

// The fields of /v1/colorize and /v1/hints from the page; null (and a message) if one is missing.
async function inputForm() {
  const info = state.info;
  const form = new FormData();
  form.append("sketch", state.sketchBlob, "sketch.png");
  if (info.hint_input === "image" || info.reference) {
    if (!state.referenceBlob) {
      const needed = info.reference ? "reference image" : info.hint_label.toLowerCase();
      message(`This model needs a ${needed}: open one above.`);
      return null;
    }
    form.append(info.reference ? "reference" : "hints", state.referenceBlob, "reference.png");
  }
  if (info.hint_input === "drawing") {
    form.append("hints", await hintsBlob(), "hints.png");
  }
  if ($("size").value) form.append("size", $("size").value);
  return form;
}

async function colorize() {
  if (!state.sketchBlob) return;
  if (state.busy) { state.again = true; return; }
  state.busy = true;
  $("busy").hidden = false;
  $("colorize").disabled = true;
  message("");
  try {
    const form = await inputForm();
    if (!form) return;
    const response = await post("/v1/colorize", form);
    if (!response.ok) return message(await errorText(response));
    const blob = await response.blob();
    const bitmap = await createImageBitmap(blob);
    const canvas = $("result-canvas");
    canvas.width = bitmap.width;
    canvas.height = bitmap.height;
    ctx2d(canvas).drawImage(bitmap, 0, 0);
    if (state.resultUrl) URL.revokeObjectURL(state.resultUrl);
    state.resultUrl = URL.createObjectURL(blob);
    $("download").href = state.resultUrl;
    $("download").hidden = false;
    document.body.dataset.results = String(Number(document.body.dataset.results || 0) + 1);
  } catch (e) {
    message(`The server could not be reached: ${e.message}`);
  } finally {
    state.busy = false;
    $("busy").hidden = true;
    $("colorize").disabled = false;
    if (state.again) { state.again = false; colorize(); }
  }
}

// ---- the colour map a blur model receives ---------------------------------------------------

function hasPaint() {
  const d = state.hints.data;
  for (let i = 3; i < d.length; i += 4) if (d[i]) return true;
  return false;
}

// Draws the server's hint channels for the current inputs (POST /v1/hints: the dense colour map
// made from the strokes) under the strokes; an empty layer hides it (nothing to spread).
async function refreshMap() {
  const canvas = $("map-canvas");
  if (!$("show-map").checked || !state.sketchBlob || !hasPaint()) {
    canvas.hidden = true;
    if ($("message").textContent === state.mapMessage) message("");
    return;
  }
  if (state.mapBusy) { state.mapAgain = true; return; }
  state.mapBusy = true;
  try {
    const form = await inputForm();
    if (!form) return;
    const response = await post("/v1/hints", form);
    if (!response.ok) {
      canvas.hidden = true;
      state.mapMessage = await errorText(response);
      return message(state.mapMessage);
    }
    const bitmap = await createImageBitmap(await response.blob());
    // The map is at the working size (the `size` field); show it over the sketch's pixels.
    const g = ctx2d(canvas);
    g.clearRect(0, 0, canvas.width, canvas.height);
    g.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    canvas.hidden = !$("show-map").checked;  // it may have been switched off meanwhile
    if ($("message").textContent === state.mapMessage) message("");
    document.body.dataset.maps = String(Number(document.body.dataset.maps || 0) + 1);
  } catch (e) {
    message(`The server could not be reached: ${e.message}`);
  } finally {
    state.mapBusy = false;
    if (state.mapAgain) { state.mapAgain = false; refreshMap(); }
  }
}

// ---- wiring ---------------------------------------------------------------------------------

function setTool(tool) {
  state.tool = tool;
  for (const b of document.querySelectorAll(".tool")) b.classList.toggle("active", b.dataset.tool === tool);
}

window.addEventListener("DOMContentLoaded", async () => {
  await loadInfo();
  $("sketch-file").addEventListener("change", (e) => e.target.files[0] && setSketch(e.target.files[0]));
  $("reference-file").addEventListener("change", (e) => e.target.files[0] && setReference(e.target.files[0]));
  $("extract").addEventListener("click", extractLineArt);
  for (const b of document.querySelectorAll(".tool")) b.addEventListener("click", () => setTool(b.dataset.tool));
  $("brush-size").addEventListener("input", () => { $("brush-size-value").textContent = $("brush-size").value; });
  $("undo").addEventListener("click", () => restore(state.undo, state.redo));
  $("redo").addEventListener("click", () => restore(state.redo, state.undo));
  $("clear").addEventListener("click", () => { pushUndo(); state.hints = new ImageData(state.width, state.height); drawHints(); hintsChanged(); });
  $("show-map").addEventListener("change", refreshMap);
  $("size").addEventListener("change", hintsChanged);
  $("export-hints").addEventListener("click", exportHints);
  $("import-hints").addEventListener("change", (e) => e.target.files[0] && importHints(e.target.files[0]));
  $("colorize").addEventListener("click", colorize);
  const hint = $("hint-canvas");
  hint.addEventListener("pointerdown", onDown);
  hint.addEventListener("pointermove", onMove);
  hint.addEventListener("pointerup", onUp);
  hint.addEventListener("pointercancel", onUp);
  for (const id of ["result-canvas", "reference-canvas"]) {
    $(id).addEventListener("click", (e) => { if (state.tool === "eyedropper") pickColour(e, $(id)); });
  }
  document.addEventListener("keydown", (e) => {
    if ((e.ctrlKey || e.metaKey) && e.key === "z") restore(e.shiftKey ? state.redo : state.undo, e.shiftKey ? state.undo : state.redo);
  });
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files[0]) setSketch(e.dataTransfer.files[0]);
  });
  document.body.dataset.ready = "1";
  // For tests and the console: the hint layer as the PNG the server receives.
  window.jaxcolor = { state, hintsBlob };
});
