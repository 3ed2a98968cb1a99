// The shareable link: the state mirrored into the URL on every change, read back on load, and the
// "Copy link" button.

import { lang, t } from "./i18n.js";
import { flat } from "./math/tensor.js";
import { get } from "./state.js";
import { decodeImage, encodeEdits, encodeImage, readUrl, writeUrl } from "./url.js";

const $ = (id) => document.getElementById(id);
let timer = 0;
let ready = false;

/** The URL parameters of the current state (see url.js for the format). */
export function urlParams(s) {
  const p = {};
  if (s.source.kind === "model") {
    p.m = s.source.id;
    if (s.target !== null) p.t = s.target;
  } else {
    p.s = s.source.id;
  }
  if (s.steps.length) p.step = s.step + 1;
  p.lang = lang();
  if (s.lrUser && s.lr) p.lr = s.lr;
  if (s.source.kind === "model" && s.input && flat(s.input).some((v) => v > 0)) p.x = encodeImage(s.input);
  if (s.source.kind === "scenario" && s.base && s.values) p.e = encodeEdits(s.base, s.values);
  return p;
}

/** Rewrite the URL (debounced: playing changes the step often). */
export function stateToUrl() {
  if (!ready) return;
  clearTimeout(timer);
  timer = setTimeout(() => {
    const s = get();
    if (s.source.id && s.trace) writeUrl(urlParams(s));
  }, 120);
}

/**
 * What the URL asks for: {lang, resolve(models, scenarios) → source or null, restore(models) →
 * {step, target, input, edits, lr}}. Unknown or malformed parts are ignored.
 */
export function restoreFromUrl() {
  const q = readUrl();
  const num = (v) => (v === undefined || v === "" || !Number.isFinite(Number(v)) ? null : Number(v));
  return {
    lang: q.lang === "en" || q.lang === "zh" ? q.lang : null,
    resolve(models, scenarios) {
      if (q.s && scenarios.some((x) => x.id === q.s)) return { kind: "scenario", id: q.s };
      if (q.m && models.some((x) => x.name === q.m)) return { kind: "model", id: q.m };
      return null;
    },
    restore(models) {
      const step = num(q.step);
      const target = num(q.t);
      const lr = num(q.lr);
      const out = {
        step: step !== null && step >= 1 ? Math.floor(step) - 1 : null,
        target: target !== null && Number.isInteger(target) && target >= 0 ? target : null,
        lr: lr !== null && lr > 0 ? lr : null,
        edits: q.s ? q.e || "" : "",
      };
      const model = models.find((x) => x.name === q.m);
      if (model && q.x) {
        const shape = model.network.input_shape;
        out.input = decodeImage(q.x, shape[shape.length - 2], shape[shape.length - 1]);
      }
      return out;
    },
  };
}

async function copy(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // No clipboard API (plain http on another host): copy through a selected, hidden field.
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "offscreen";
    document.body.append(area);
    area.select();
    const ok = document.execCommand("copy");
    area.remove();
    return ok;
  }
}

export function initShare({ status }) {
  ready = true;
  $("copy-link").addEventListener("click", async () => {
    const s = get();
    writeUrl(urlParams(s));
    const ok = await copy(location.href);
    const msg = $("share-msg");
    // The digit model's learned weights (114,314 numbers) do not fit in a link: say so.
    const copied = s.source.kind === "model" && s.params ? "share.copiedNoWeights" : "share.copied";
    msg.textContent = ok ? t(copied) : t("share.failed");
    msg.dataset.url = location.href;
    setTimeout(() => { msg.textContent = ""; }, 4000);
    if (!ok) status(t("share.failed"));
  });
}
