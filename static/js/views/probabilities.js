// The class probabilities as bars; the predicted class stands out, the target is marked.
// Each bar is a button: choosing it makes that class the loss target.

import { percent, full } from "../format.js";
import { t } from "../i18n.js";

export class Probabilities {
  constructor(root, { onPick }) {
    this.root = root;
    this.onPick = onPick;
    this.rows = [];
  }

  build(n) {
    this.root.replaceChildren();
    this.rows = [];
    for (let k = 0; k < n; k++) {
      const item = document.createElement("div");
      item.setAttribute("role", "listitem");
      const btn = document.createElement("button");
      btn.type = "button";
      btn.className = "prob";
      btn.dataset.cls = String(k);
      const name = document.createElement("span");
      name.className = "prob-name";
      name.textContent = String(k);
      const track = document.createElement("span");
      track.className = "prob-track";
      const bar = document.createElement("span");
      bar.className = "prob-bar";
      track.append(bar);
      const val = document.createElement("span");
      val.className = "prob-value";
      btn.append(name, track, val);
      btn.addEventListener("click", () => this.onPick(k));
      item.append(btn);
      this.root.append(item);
      this.rows.push({ btn, bar, val });
    }
  }

  /** probabilities: array or null; version: the drawing version they belong to. */
  update(probabilities, prediction, target, version) {
    const n = probabilities ? probabilities.length : 10;
    if (this.rows.length !== n) this.build(n);
    this.rows.forEach(({ btn, bar, val }, k) => {
      const p = probabilities ? probabilities[k] : 0;
      bar.style.width = `${(100 * p).toFixed(2)}%`;
      val.textContent = probabilities ? percent(p) : "";
      val.title = full(p);
      btn.classList.toggle("predicted", probabilities !== null && k === prediction);
      btn.classList.toggle("target", k === target);
      btn.setAttribute("aria-label", t("probs.barAria", { k, p: probabilities ? percent(p) : "–" }));
      btn.setAttribute("aria-pressed", String(k === target));
    });
    if (version !== undefined) this.root.dataset.version = String(version);
    this.root.dataset.prediction = prediction === null || prediction === undefined ? "" : String(prediction);
  }
}
