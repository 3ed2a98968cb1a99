// The scenario's values, editable in place: the input, every layer's weights and biases, and the
// MSE target. Each number is a button; activating it turns it into a number field (Enter or leaving
// the field commits, Escape cancels). Cells the last learning step changed are marked.

import { fmt, full } from "../format.js";
import { t } from "../i18n.js";
import { shapeOf } from "../math/tensor.js";
import { layerName } from "./overview.js";

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** The value at `path` (a list of indices) inside nested arrays. */
export function getAt(a, path) {
  return path.reduce((x, k) => x[k], a);
}

/** A deep copy of `a` with the value at `path` replaced by `v`. */
export function setAt(a, path, v) {
  if (!path.length) return v;
  const copy = Array.isArray(a) ? a.slice() : { ...a };
  copy[path[0]] = setAt(a[path[0]], path.slice(1), v);
  return copy;
}

/** The sections of a scenario's values: [{key, title, tensor, path: [...]}]. */
function sections(values, spec) {
  const out = [{ key: "input", title: t("edit.input"), tensor: values.input, path: ["input"] }];
  values.params.forEach((p, i) => {
    if (!p || !p.w) return;
    const name = t("edit.layer", { n: i + 1, name: layerName(spec.layers[i]) });
    out.push({ key: `w${i}`, title: `${name} · ${t("edit.w")}`, tensor: p.w, path: ["params", i, "w"] });
    out.push({ key: `b${i}`, title: `${name} · ${t("edit.b")}`, tensor: p.b, path: ["params", i, "b"] });
  });
  const mse = spec.loss === "mse";
  out.push({ key: "target", title: t(mse ? "edit.target" : "edit.targetClass"), tensor: values.target, path: ["target"] });
  return out;
}

/** Maps of a tensor with the index prefix of each: conv w (O,I,kH,kW) → one map per [o, i]. */
function mapsOf(tensor) {
  const d = shapeOf(tensor).length;
  if (d === 4) return tensor.flatMap((f, o) => f.map((m, i) => ({ map: m, prefix: [o, i] })));
  if (d === 3) return tensor.map((m, c) => ({ map: m, prefix: [c] }));
  if (d === 2) return [{ map: tensor, prefix: [] }];
  if (d === 1) return [{ map: [tensor], prefix: [], vector: true }];
  return [{ map: [[tensor]], prefix: [], scalar: true }];
}

export class Editor {
  /** onEdit(path, value): path like ["params", 0, "w", 0, 0, 1, 1]. */
  constructor(root, { onEdit, onReset }) {
    this.root = root;
    this.onEdit = onEdit;
    document.getElementById("edit-reset").addEventListener("click", () => onReset());
  }

  /** values: {input, params, target}; changed: {key → nested Δ} from the last learning step. */
  render(values, spec, { edited, changed } = {}) {
    this.values = values;
    this.root.replaceChildren();
    document.getElementById("edit-reset").disabled = !edited;
    for (const s of sections(values, spec)) {
      const box = el("div", "ed-section");
      box.append(el("h3", "ed-title", s.title));
      const grids = el("div", "ed-maps");
      for (const m of mapsOf(s.tensor)) grids.append(this.grid(s, m, changed && changed[s.key]));
      box.append(grids);
      this.root.append(box);
    }
  }

  grid(section, { map, prefix, vector, scalar }, delta) {
    const table = el("div", "ed-grid");
    table.setAttribute("role", "group");
    const label = prefix.length ? `${section.title} [${prefix.join(", ")}]` : section.title;
    table.setAttribute("aria-label", label);
    table.style.gridTemplateColumns = `repeat(${map[0].length}, auto)`;
    const box = el("div", "ed-map");
    if (prefix.length) box.append(el("span", "ed-sub", prefix.length === 1 ? t("overview.channel", { c: prefix[0] }) : `[${prefix.join(", ")}]`));
    box.append(table);
    map.forEach((row, i) => row.forEach((v, j) => {
      const idx = scalar ? [] : vector ? [j] : [...prefix, i, j];
      const path = [...section.path, ...idx];
      const b = el("button", "ev", fmt(v, 4));
      b.type = "button";
      b.dataset.path = path.join(".");
      b.dataset.value = full(v);
      b.title = full(v);
      const name = `${section.title}[${idx.join(", ")}]`;
      b.setAttribute("aria-label", t("edit.cellAria", { name, v: full(v) }));
      const dv = delta ? getAt(delta, idx) : 0;
      if (dv) {
        b.classList.add("changed", dv > 0 ? "up" : "down");
        b.title = `${full(v)} (Δ = ${full(dv)})`;
      }
      b.addEventListener("click", () => this.open(b, path, v));
      table.append(b);
    }));
    return box;
  }

  open(button, path, value) {
    const input = el("input", "ev-input");
    input.type = "number";
    input.step = "any";
    input.value = String(value);
    input.setAttribute("aria-label", t("edit.fieldAria", { name: button.getAttribute("aria-label") }));
    input.dataset.path = button.dataset.path;
    let done = false;
    const close = (commit) => {
      if (done) return;
      const v = Number(input.value);
      if (commit && (input.value.trim() === "" || !Number.isFinite(v))) {
        input.setAttribute("aria-invalid", "true");
        input.title = t("edit.invalid");
        return;
      }
      done = true;
      input.replaceWith(button);
      button.focus();
      if (commit && v !== value) this.onEdit(path, v);
    };
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") close(true);
      else if (e.key === "Escape") close(false);
      else return;
      e.preventDefault();
      e.stopPropagation();
    });
    input.addEventListener("blur", () => {
      close(true);
      if (!done) close(false); // leaving an invalid field cancels it
    });
    button.replaceWith(input);
    input.focus();
    input.select();
  }
}
