// The stepper: Previous / Play-Pause / Next, speed, the counter, and a track of every step.

import { CONFIG } from "../config.js";
import { t } from "../i18n.js";
import { stepTitleKey } from "../steps.js";
import { layerName } from "./overview.js";

const $ = (id) => document.getElementById(id);

export class Stepper {
  constructor({ onGo, onPlay, onSpeed }) {
    this.onGo = onGo;
    $("step-prev").addEventListener("click", () => onGo(this.index - 1));
    $("step-next").addEventListener("click", () => onGo(this.index + 1));
    $("step-play").addEventListener("click", () => onPlay());
    const speed = $("speed");
    for (const s of CONFIG.speeds) {
      const o = document.createElement("option");
      o.value = String(s);
      o.textContent = `${s}×`;
      speed.append(o);
    }
    speed.value = String(CONFIG.defaultSpeed);
    speed.addEventListener("change", () => onSpeed(Number(speed.value)));
    this.index = 0;
    // The dots are ONE control: one tab stop (the current step), arrow keys, Home and End inside.
    const track = $("step-track");
    track.setAttribute("role", "toolbar");
    track.addEventListener("keydown", (e) => {
      const n = track.children.length;
      const to = { ArrowRight: this.index + 1, ArrowDown: this.index + 1, ArrowLeft: this.index - 1,
        ArrowUp: this.index - 1, Home: 0, End: n - 1 }[e.key];
      if (to === undefined) return;
      e.preventDefault();
      e.stopPropagation();
      this.focusDot = true;
      onGo(Math.max(0, Math.min(n - 1, to)));
    });
  }

  title(trace, step) {
    const spec = trace.network.layers[step.layer];
    const k = spec.kernel_size ? spec.kernel_size.join("×") : "";
    return t(stepTitleKey(step, spec), { n: step.layer + 1, k, act: spec.activation || "", units: spec.units ?? "" });
  }

  render(trace, steps, index, playing) {
    this.index = index;
    const step = steps[index];
    $("step-prev").disabled = index <= 0;
    $("step-next").disabled = index >= steps.length - 1;
    const play = $("step-play");
    play.textContent = playing ? "❚❚ " + t("stepper.pause") : "▶ " + t("stepper.play");
    play.setAttribute("aria-label", t(playing ? "stepper.pauseAria" : "stepper.playAria"));
    play.setAttribute("aria-pressed", String(playing));
    $("step-counter").textContent = t("stepper.counter", { i: index + 1, n: steps.length });
    $("step-counter").dataset.index = String(index);
    $("step-counter").dataset.total = String(steps.length);
    const phase = $("step-phase");
    phase.textContent = t("phase." + step.phase);
    phase.className = "phase " + step.phase;
    $("step-title").textContent = this.title(trace, step);
    this.track(trace, steps, index);
  }

  track(trace, steps, index) {
    const ol = $("step-track");
    if (ol.children.length !== steps.length || ol.dataset.key !== trace.__key) {
      ol.replaceChildren();
      ol.dataset.key = trace.__key;
      steps.forEach((s, k) => {
        const li = document.createElement("li");
        const b = document.createElement("button");
        b.type = "button";
        b.className = "dot " + s.phase;
        const spec = trace.network.layers[s.layer];
        b.title = `${k + 1}. ${layerName(spec)} — ${this.title(trace, s)}`;
        b.setAttribute("aria-label", t("stepper.goAria", { i: k + 1, title: this.title(trace, s) }));
        b.tabIndex = -1;
        b.addEventListener("click", () => this.onGo(k));
        li.append(b);
        ol.append(li);
      });
    }
    [...ol.children].forEach((li, k) => {
      const b = li.firstChild;
      b.classList.toggle("current", k === index);
      b.classList.toggle("done", k < index);
      b.tabIndex = k === index ? 0 : -1;
      if (k === index) b.setAttribute("aria-current", "step");
      else b.removeAttribute("aria-current");
    });
    if (this.focusDot) {
      this.focusDot = false;
      ol.children[index]?.firstChild.focus();
    }
  }
}
