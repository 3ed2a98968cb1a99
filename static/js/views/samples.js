// Inputs for people who cannot draw: a few real MNIST test digits as buttons (GET /api/samples)
// and a PNG/JPEG upload through /api/predict's upload path. Both give the network's exact input.

import { api } from "../api.js";
import { onLangChange, t } from "../i18n.js";
import { paintSeen } from "./pad.js";

const $ = (id) => document.getElementById(id);

/** onInput(input28): trace this input; model(): the model name; status(text) for errors. */
export async function initSamples({ onInput, model, status }) {
  const box = $("samples");
  let list = [];
  const label = () => {
    [...box.querySelectorAll("button")].forEach((b, k) => {
      b.setAttribute("aria-label", t("samples.aria", { i: list[k].index, label: list[k].label }));
      b.title = b.getAttribute("aria-label");
    });
  };
  $("upload").addEventListener("change", async (e) => {
    const file = e.target.files && e.target.files[0];
    if (!file) return;
    try {
      const res = await api.predictUpload(model(), file);
      onInput(res.input);
    } catch (err) {
      status(t("status.error", { msg: err.message }));
    }
    e.target.value = "";
  });
  try {
    list = (await api.samples()).samples || [];
  } catch {
    list = [];
  }
  box.replaceChildren();
  for (const s of list) {
    const item = document.createElement("div");
    item.setAttribute("role", "listitem");
    const b = document.createElement("button");
    b.type = "button";
    b.className = "sample";
    b.dataset.label = String(s.label);
    const c = document.createElement("canvas");
    paintSeen(c, s.input);
    b.append(c);
    b.addEventListener("click", () => onInput(s.input));
    item.append(b);
    box.append(item);
  }
  label();
  onLangChange(label);
}
