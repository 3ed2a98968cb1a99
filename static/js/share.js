// The shareable link: the state mirrored into the URL on every change, read back on load, and the
// "Copy link" button.

import { lang, t } from "./i18n.js";
import { flat } from "./math/tensor.js";
import { get } from "./state.js";
import { decodeExact, decodeImage, encodeEdits, encodeExact, readUrl, writeUrl } from "./url.js";

const $ = (id) => document.getElementById(id);
let timer = 0;
let ready = false;

// The exact encoding of the last input (CompressionStream is asynchronous): {input, text}.
let exact = { input: null, text: "" };

async function exactInput(input) {
  if (exact.input !== input) exact = { input, text: await encodeExact(input) };
  return exact.text;
}

/** The URL parameters of the current state (see url.js for the format). */
export async function urlParams(s) {
  const p = {};
  // the playground's network travels in the fragment (#net=…); the page re-traces it from there
  if (isPlayground(s)) return { lang: lang() };
  if (s.source.kind === "model") {
    p.m = s.source.id;
    // The target the trace used, always: the receiver then computes the very same loss.
    const target = s.target ?? s.prediction;
    if (target !== null && target !== undefined) p.t = target;
  } else {
    p.s = s.source.id;
  }
  if (s.steps.length) p.step = s.step + 1;
  p.lang = lang();
  // The learning rate in use, exactly as typed or suggested: the receiver's Apply does the same step.
  if (s.lr) p.lr = s.lr;
  if (s.source.kind === "model" && s.input && flat(s.input).some((v) => v > 0)) p.x = await exactInput(s.input);
  if (s.source.kind === "scenario" && s.base && s.values) p.e = encodeEdits(s.base, s.values);
  return p;
}

function isPlayground(s) {
  return s.source.kind === "scenario" && s.source.id === "playground";
}

/** The URL's fragment for this state: the playground's #net=… while its network is shown. */
function fragment(s) {
  return isPlayground(s) ? location.hash : "";
}

/** Rewrite the URL (debounced: playing changes the step often). */
export function stateToUrl() {
  if (!ready) return;
  clearTimeout(timer);
  timer = setTimeout(async () => {
    const s = get();
    if (!s.source.id || !s.trace) return;
    // A trace on its way changes the state again when it arrives: write the URL after it, not
    // while the page waits for it (encoding the input and replacing the URL take ~10 ms).
    if (document.body.dataset.tracing === "true") return stateToUrl();
    const p = await urlParams(s);
    if (s === get() && s.trace) writeUrl(p, fragment(s));
    document.body.dataset.url = location.search; // for the e2e tests: the URL is up to date
  }, 120);
}

/**
 * What the URL asks for: {lang, problems, resolve(models, scenarios) → source or null,
 * restore(models) → Promise<{step, target, input, edits, lr}>}. Unknown, malformed or hostile
 * parts are dropped and named in `problems` (the page shows a short notice and goes on).
 */
export function restoreFromUrl() {
  const q = readUrl();
  const problems = [];
  const num = (v) => (v === undefined || v === "" || !Number.isFinite(Number(v)) ? null : Number(v));
  const bad = (k) => problems.push(`${k}=${String(q[k]).slice(0, 24)}`);
  if (q.lang !== undefined && q.lang !== "en" && q.lang !== "zh") bad("lang");
  return {
    lang: q.lang === "en" || q.lang === "zh" ? q.lang : null,
    problems,
    resolve(models, scenarios) {
      if (q.s && scenarios.some((x) => x.id === q.s)) return { kind: "scenario", id: q.s };
      if (q.m && models.some((x) => x.name === q.m)) return { kind: "model", id: q.m };
      if (q.s) bad("s");
      else if (q.m) bad("m");
      return null;
    },
    async restore(models) {
      const step = num(q.step);
      const target = num(q.t);
      const lr = num(q.lr);
      const model = models.find((x) => x.name === q.m);
      const classes = model ? flat(model.network.output_shape).reduce((a, b) => a * b, 1) : 0;
      const out = {
        step: step !== null && step >= 1 && step <= 1000 ? Math.floor(step) - 1 : null,
        target: model && target !== null && Number.isInteger(target) && target >= 0 && target < classes ? target : null,
        lr: lr !== null && lr > 0 && lr <= 1e3 ? lr : null,
        edits: q.s ? q.e || "" : "",
      };
      if (out.edits) {
        // "i:v" with a whole index and a number the API accepts (|v| ≤ 1e6); others are dropped.
        const parts = out.edits.split(",");
        const good = parts.filter((part) => {
          const m = /^(\d{1,7}):(.+)$/.exec(part);
          return m && Number.isFinite(Number(m[2])) && Math.abs(Number(m[2])) <= 1e6;
        });
        if (good.length !== parts.length) bad("e");
        out.edits = good.join(",");
      }
      if (q.step !== undefined && out.step === null) bad("step");
      if (q.t !== undefined && out.target === null) bad("t");
      if (q.lr !== undefined && out.lr === null) bad("lr");
      if (model && q.x) {
        const shape = model.network.input_shape;
        const [h, w] = [shape[shape.length - 2], shape[shape.length - 1]];
        out.input = q.x.startsWith("f64.") ? await decodeExact(q.x, h, w) : decodeImage(q.x, h, w);
        if (!out.input) bad("x");
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
    writeUrl(await urlParams(s), fragment(s));
    const ok = await copy(location.href);
    const msg = $("share-msg");
    // The digit model's learned weights (127,530 numbers) do not fit in a link: say so.
    const copied = s.source.kind === "model" && s.params ? "share.copiedNoWeights" : "share.copied";
    msg.textContent = ok ? t(copied) : t("share.failed");
    msg.dataset.url = location.href;
    setTimeout(() => { msg.textContent = ""; }, 4000);
    if (!ok) status(t("share.failed"));
  });
}
