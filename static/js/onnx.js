// "Open your own model (.onnx)": the file goes to POST /api/models, which checks and converts it;
// the imported network becomes the source "onnx:<name>" and is traced with POST /api/trace
// {network, params, input, target} like any network of the client's own. Nothing stays on the
// server. A 1×28×28 model reads the drawing pad; any other input size gets an input card here:
// an image upload resized to the input's size, a random input, and (for small inputs) a number
// editor.

import { t, onLangChange } from "./i18n.js";
import { currentTarget, fillSources, showScenarioNote } from "./session.js";
import { learningChanged } from "./learning.js";
import { get, set, subscribe } from "./state.js";

const $ = (id) => document.getElementById(id);
const EDITABLE_VALUES = 64; // inputs up to this many numbers get a number editor
let hooks = { selectSource: async () => {}, runTrace: async () => {}, status: () => {}, pad: null };
let reportCard = null;
let inputCard = null;

export function isOnnx(s) {
  return s.source.kind === "onnx";
}

function shapeOf(s) {
  return s.onnx ? s.onnx.network.input_shape : null;
}

/** The imported network reads the 28×28 drawing (one channel, 28×28, a classifier). */
export function drawable(s) {
  const sh = shapeOf(s);
  return Boolean(sh && sh[0] === 1 && sh[1] === 28 && sh[2] === 28);
}

function classifier(s) {
  return Boolean(s.onnx && s.onnx.network.loss === "cross_entropy");
}

/** The /api/trace body for an imported network (learned parameters, if any, replace its own). */
export function onnxTraceBody(s) {
  if (!s.onnx) return null;
  const input = drawable(s) ? s.input : s.onnxInput;
  if (!input) return null;
  const out = s.onnx.network.output_shape;
  const target = classifier(s) ? currentTarget(s) : zeros(out);
  return { network: s.spec || s.onnx.network, params: s.params || s.onnx.params, input, target };
}

function zeros(shape) {
  if (shape.length === 1) return new Array(shape[0]).fill(0);
  return Array.from({ length: shape[0] }, () => zeros(shape.slice(1)));
}

// ------------------------------------------------------------------ upload
async function upload(file) {
  const form = new FormData();
  form.append("file", file, file.name);
  document.body.dataset.onnx = "loading";
  hooks.status(t("onnx.loading", { file: file.name }));
  try {
    const res = await fetch("/api/models", { method: "POST", body: form, headers: { Accept: "application/json" } });
    const data = await res.json().catch(() => null);
    if (!res.ok) {
      const d = data && data.detail;
      throw new Error(Array.isArray(d) ? d.map((e) => e.msg).join("; ") : res.statusText);
    }
    set({ onnx: data, onnxInput: null });
    fillSources(get());
    hooks.status(t("onnx.loaded", { name: data.name, n: data.network.layers.length }));
    document.body.dataset.onnx = "ready";
    await hooks.selectSource("onnx", data.name);
  } catch (err) {
    document.body.dataset.onnx = "error";
    hooks.status(t("onnx.error", { msg: err.message }));
  }
}

// ------------------------------------------------------------------ cards
function card(id, where) {
  const el = document.createElement("section");
  el.className = "card";
  el.id = id;
  el.hidden = true;
  where.before(el);
  return el;
}

function heading(text) {
  const h = document.createElement("h2");
  h.textContent = text;
  return h;
}

function hint(text) {
  const p = document.createElement("p");
  p.className = "hint";
  p.textContent = text;
  return p;
}

function renderReport() {
  const s = get();
  if (!reportCard) return;
  reportCard.hidden = !isOnnx(s) || !s.onnx;
  if (reportCard.hidden) return;
  const { report, name, network } = s.onnx;
  const inShape = report.input.shape.join("×");
  const outShape = report.output.shape.join("×");
  reportCard.replaceChildren(
    heading(t("onnx.reportTitle", { name })),
    hint(t("onnx.reportLine", { producer: report.producer || "?", opset: report.opset, layers: network.layers.length,
      params: network.param_count.toLocaleString(), input: inShape, output: outShape })),
  );
  const details = document.createElement("details");
  const summary = document.createElement("summary");
  summary.textContent = t("onnx.nodes", { n: report.nodes.length });
  const list = document.createElement("ol");
  list.className = "onnx-nodes";
  for (const n of report.nodes) {
    const li = document.createElement("li");
    const layer = n.layer === null ? "" : " → " + t("onnx.layer", { i: n.layer });
    li.textContent = `${n.op_type} '${n.name || "#" + n.index}'${layer}: ${n.as}`;
    list.append(li);
  }
  details.append(summary, list);
  reportCard.append(details);
  for (const note of report.notes) reportCard.append(hint(note));
}

function renderInput() {
  const s = get();
  if (!inputCard) return;
  inputCard.hidden = !isOnnx(s) || !s.onnx || drawable(s);
  if (inputCard.hidden) return;
  const [c, h, w] = shapeOf(s);
  inputCard.replaceChildren(heading(t("onnx.inputTitle", { shape: `${c}×${h}×${w}` })), hint(t("onnx.inputHint")));
  const row = document.createElement("div");
  row.className = "row";
  const fileLabel = document.createElement("label");
  fileLabel.className = "field";
  const span = document.createElement("span");
  span.textContent = t("onnx.image", { w, h });
  const file = document.createElement("input");
  file.type = "file";
  file.accept = "image/*";
  file.id = "onnx-image";
  file.addEventListener("change", () => file.files[0] && imageInput(file.files[0]));
  fileLabel.append(span, file);
  const random = document.createElement("button");
  random.type = "button";
  random.id = "onnx-random";
  random.textContent = t("onnx.random");
  random.addEventListener("click", () => useInput(randomInput(c, h, w)));
  row.append(fileLabel, random);
  inputCard.append(row);
  const preview = document.createElement("canvas");
  preview.className = "seen";
  preview.id = "onnx-preview";
  preview.setAttribute("role", "img");
  preview.setAttribute("aria-label", t("onnx.previewAria"));
  inputCard.append(preview);
  if (s.onnxInput) paint(preview, s.onnxInput);
  if (s.onnxInput && c * h * w <= EDITABLE_VALUES) inputCard.append(editor(s.onnxInput));
}

/** Number fields for a small input: one grid per channel (the worked examples' editor style). */
function editor(input) {
  const wrap = document.createElement("div");
  wrap.className = "editor ed-maps";
  wrap.style.overflowX = "auto"; // wide inputs scroll inside the card
  input.forEach((plane, ci) => {
    const box = document.createElement("div");
    box.className = "ed-map";
    const sub = document.createElement("span");
    sub.className = "ed-sub";
    sub.textContent = t("onnx.channel", { c: ci });
    const grid = document.createElement("div");
    grid.className = "ed-grid";
    grid.setAttribute("role", "group");
    grid.setAttribute("aria-label", t("onnx.channel", { c: ci }));
    grid.style.gridTemplateColumns = `repeat(${plane[0].length}, auto)`;
    plane.forEach((rowVals, i) => {
      rowVals.forEach((v, j) => {
        const field = document.createElement("input");
        field.className = "ev";
        field.type = "text"; // no spinner: the cells stay narrow
        field.inputMode = "decimal";
        field.style.width = "36px";
        field.value = String(v);
        field.setAttribute("aria-label", t("onnx.cellAria", { c: ci, i, j }));
        field.addEventListener("change", () => {
          const x = Number(field.value);
          if (field.value === "" || !Number.isFinite(x)) {
            field.setAttribute("aria-invalid", "true");
            return;
          }
          field.removeAttribute("aria-invalid");
          const next = structuredClone(get().onnxInput);
          next[ci][i][j] = x;
          useInput(next, false);
        });
        grid.append(field);
      });
    });
    box.append(sub, grid);
    wrap.append(box);
  });
  return wrap;
}

function randomInput(c, h, w) {
  return Array.from({ length: c }, () => Array.from({ length: h }, () => Array.from({ length: w }, () => Math.round(Math.random() * 1000) / 1000)));
}

function useInput(input, rerender = true) {
  set({ onnxInput: input, learned: null });
  if (rerender) renderInput();
  else paint($("onnx-preview"), input);
  hooks.runTrace();
}

/** An image file, resized to the input's W×H; values in [0, 1] (1 = white); one channel:
 * luminance, three: R, G, B, other counts: luminance in each. */
async function imageInput(file) {
  const [c, h, w] = shapeOf(get());
  try {
    const bmp = await createImageBitmap(file);
    const cv = document.createElement("canvas");
    cv.width = w;
    cv.height = h;
    const ctx = cv.getContext("2d");
    ctx.drawImage(bmp, 0, 0, w, h);
    const px = ctx.getImageData(0, 0, w, h).data;
    const at = (i, j, k) => px[(i * w + j) * 4 + k] / 255;
    const lum = (i, j) => 0.299 * at(i, j, 0) + 0.587 * at(i, j, 1) + 0.114 * at(i, j, 2);
    const input = Array.from({ length: c }, (_, ci) =>
      Array.from({ length: h }, (_, i) => Array.from({ length: w }, (_, j) => (c === 3 ? at(i, j, ci) : lum(i, j)))),
    );
    useInput(input);
  } catch (err) {
    hooks.status(t("onnx.error", { msg: err.message }));
  }
}

/** Channel 0 (or RGB for three channels), values clipped to [0, 1]. */
function paint(canvas, input) {
  if (!canvas) return;
  const c = input.length;
  const h = input[0].length;
  const w = input[0][0].length;
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(w, h);
  const v = (ci, i, j) => Math.round(255 * Math.max(0, Math.min(1, input[ci][i][j])));
  for (let i = 0; i < h; i++) {
    for (let j = 0; j < w; j++) {
      const o = (i * w + j) * 4;
      img.data[o] = v(0, i, j);
      img.data[o + 1] = v(c === 3 ? 1 : 0, i, j);
      img.data[o + 2] = v(c === 3 ? 2 : 0, i, j);
      img.data[o + 3] = 255;
    }
  }
  ctx.putImageData(img, 0, 0);
}

// ------------------------------------------------------------------ the source
/** Show the imported network: called by selectSource for the source kind "onnx". */
export async function enterOnnx() {
  const s = get();
  if (!s.onnx) return;
  const draw = drawable(s);
  const cls = classifier(s);
  $("pad-card").hidden = !draw;
  $("seen-card").hidden = !draw;
  $("probs-card").hidden = !cls;
  $("target-card").hidden = !cls;
  $("edit-card").hidden = true;
  set({ probabilities: null, prediction: null });
  fillSources(get()); // the menu shows the upload as chosen
  showScenarioNote(get(), false);
  learningChanged();
  renderReport();
  if (draw) {
    renderInput();
    hooks.pad.changed(true); // the drawing -> /api/predict's 28×28 -> the trace
    return;
  }
  const [c, h, w] = shapeOf(s);
  const fits = s.onnxInput && s.onnxInput.length === c && s.onnxInput[0].length === h && s.onnxInput[0][0].length === w;
  if (!fits) set({ onnxInput: randomInput(c, h, w) });
  renderInput();
  await hooks.runTrace();
}

/** hooks: {selectSource(kind, id), runTrace(), status(text), pad} */
export function initOnnx(h) {
  hooks = { ...hooks, ...h };
  const side = $("side");
  reportCard = card("onnx-report", side.firstElementChild);
  inputCard = card("onnx-input-card", $("probs-card"));
  const file = $("onnx-file");
  $("onnx-open").addEventListener("click", () => file.click());
  file.addEventListener("change", () => {
    if (file.files[0]) upload(file.files[0]);
    file.value = "";
  });
  const rerender = () => {
    renderReport();
    renderInput();
  };
  onLangChange(rerender);
  subscribe(["source"], rerender); // another source hides the cards
}
