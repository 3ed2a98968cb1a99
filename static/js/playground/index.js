// The architecture playground: build a network (conv, pools, flatten, dense, residual and concat
// blocks), see every layer's output shape and its formula update live, get an invalid choice
// explained on the spot, then trace it and step through it in the main view. The network
// travels in the link (#net=…). Limits come from GET /api/health's "limits" when the server
// sends them; the server checks every spec again either way.

import { t, onLangChange } from "../i18n.js";
import { countLayers, maxChannels, shapeText, walk } from "./shapes.js";

const $ = (id) => document.getElementById(id);

function h(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  e.append(...kids.filter((k) => k !== null && k !== undefined));
  return e;
}

const SMALL_INPUT = [[[1, 0, 2, 1, 0, 3], [3, 1, 0, 2, 1, 0], [0, 2, 1, 1, 3, 1], [2, 1, 3, 0, 1, 2], [1, 3, 0, 2, 2, 0], [0, 1, 2, 1, 0, 1]]];

const NEW = {
  conv2d: () => ({ type: "conv2d", out_channels: 4, kernel_size: 3, stride: 1, padding: 1, activation: "relu" }),
  maxpool2d: () => ({ type: "maxpool2d", kernel_size: 2, stride: 2, padding: 0 }),
  avgpool2d: () => ({ type: "avgpool2d", kernel_size: 2, stride: 2, padding: 0 }),
  flatten: () => ({ type: "flatten" }),
  dense: () => ({ type: "dense", units: 10, activation: "softmax" }),
  residual: () => ({ type: "residual", activation: "relu", projection: null,
    layers: [NEW.conv2d(), { ...NEW.conv2d(), activation: "identity" }] }),
  concat: () => ({ type: "concat", branches: [[{ ...NEW.conv2d(), kernel_size: 1, padding: 0 }], [NEW.conv2d()]] }),
};

const DEFAULT = () => ({
  input: "digit",
  layers: [NEW.conv2d(), NEW.maxpool2d(), NEW.residual(), NEW.flatten(), NEW.dense()],
});

const SLIDERS = {
  conv2d: [["out_channels", 1, 16], ["kernel_size", 1, 7], ["stride", 1, 3], ["padding", 0, 3]],
  maxpool2d: [["kernel_size", 1, 4], ["stride", 1, 4], ["padding", 0, 2]],
  avgpool2d: [["kernel_size", 1, 4], ["stride", 1, 4], ["padding", 0, 2]],
  dense: [["units", 1, 64]],
};
const ACTS = ["relu", "identity", "tanh", "sigmoid"];

let currentSpec = null;
let currentStatus = { spec: null, reason: "unbuilt", shape: null, madds: 0, layers: 0 };

/**
 * The playground's network as a spec when it is valid, takes the 1×28×28 digit and ends in a
 * softmax classifier of 10 classes (what Train mode trains on MNIST); null otherwise.
 */
export function playgroundSpec() {
  return currentSpec;
}

/**
 * The playground's network for Train mode: {spec, reason, shape, madds, layers}. reason is null
 * when spec can be trained on the digits, else why not: "unbuilt" (not opened yet), "invalid" (a
 * shape error or a limit), "input" (the 6×6 example input, not a 1×28×28 digit) or "output" (not
 * a softmax over 10 classes; shape is its output shape).
 */
export function playgroundStatus() {
  return currentStatus;
}

export function initPlayground({ traceNetwork, digit, status }) {
  const root = $("playground");
  const toggle = $("playground-tab");
  if (!root || !toggle) return;
  let net = fromHash() || DEFAULT();
  let limits = null;
  // run() waits for the limits: a network over the caps (e.g. from a link) is marked, never sent
  const limitsReady = fetch("/api/health").then((r) => r.json()).then((j) => {
    limits = j.limits || null;
    render();
  }).catch(() => {});

  toggle.addEventListener("click", () => open(root.hidden));
  onLangChange(() => !root.hidden && render());
  let shared = null; // the traced network's #net=…, kept in the address bar while it is shown
  // the page rewrites its query on every step (share.js); the network stays after it
  new MutationObserver(() => {
    if (shared && document.body.dataset.source === "playground" && !location.hash.includes("net=")) {
      history.replaceState(null, "", `${location.pathname}${location.search}#net=${shared}`);
    }
  }).observe(document.body, { attributes: true, attributeFilter: ["data-url", "data-traces"] });
  window.addEventListener("hashchange", () => {
    const n = fromHash();
    if (!n || encode(n) === shared) return;
    net = n;
    open(true);
    run();
  });
  if (fromHash()) {
    open(true);
    // a shared link: trace the network once the page has shown its first trace
    const go = () => {
      if (!document.body.dataset.traces) return false;
      run();
      return true;
    };
    if (!go()) {
      const mo = new MutationObserver(() => go() && mo.disconnect());
      mo.observe(document.body, { attributes: true, attributeFilter: ["data-traces"] });
    }
  }

  function open(show) {
    root.hidden = !show;
    toggle.setAttribute("aria-pressed", String(show));
    if (show) render();
  }

  function inputShape() {
    return net.input === "digit" ? [1, 28, 28] : [1, 6, 6];
  }

  function spec() {
    const last = net.layers[net.layers.length - 1];
    const ce = last && last.type === "dense" && last.activation === "softmax";
    return { input_shape: inputShape(), layers: JSON.parse(JSON.stringify(net.layers)), loss: ce ? "cross_entropy" : "mse" };
  }

  function changed() {
    render();
  }

  /** One layer list (the network's, F's, a branch's) with its rows and add buttons. */
  function list(layers, rows, path, nested) {
    const ol = h("ol", { class: "pg-list" + (nested ? " pg-nested" : "") });
    layers.forEach((l, i) => ol.append(row(layers, i, rows[i] || {}, `${path}${i}`, nested)));
    const adds = h("div", { class: "pg-adds", role: "group", "aria-label": t("pg.addAria") });
    for (const type of Object.keys(NEW)) {
      if (nested && (type === "flatten" || type === "dense")) continue;
      adds.append(h("button", { type: "button", class: "pg-add", "data-add": type, "data-path": path,
        onclick: () => { layers.push(NEW[type]()); changed(); } }, `+ ${t("pg.type." + type)}`));
    }
    const box = h("div", { class: "pg-listbox" }, ol, adds);
    return box;
  }

  function row(layers, i, r, id, nested) {
    const l = layers[i];
    const li = h("li", { class: "pg-layer" + (r.error ? " invalid" : ""), "data-type": l.type, "data-id": id });
    const title = h("strong", { text: t("pg.type." + l.type) });
    const shape = h("span", { class: "pg-shape", "data-role": "shape", text: r.shape ? `→ ${shapeText(r.shape)}` : "" });
    const move = (d) => () => {
      const j = i + d;
      if (j < 0 || j >= layers.length) return;
      [layers[i], layers[j]] = [layers[j], layers[i]];
      changed();
    };
    const tools = h("span", { class: "pg-tools" },
      h("button", { type: "button", "aria-label": t("pg.up"), title: t("pg.up"), disabled: i === 0, onclick: move(-1) }, "↑"),
      h("button", { type: "button", "aria-label": t("pg.down"), title: t("pg.down"), disabled: i === layers.length - 1, onclick: move(1) }, "↓"),
      h("button", { type: "button", "aria-label": t("pg.remove"), title: t("pg.remove"), "data-remove": id,
        onclick: () => { layers.splice(i, 1); changed(); } }, "✕"));
    li.append(h("div", { class: "pg-head" }, title, shape, tools));
    const fields = h("div", { class: "pg-fields" });
    for (const [key, lo, hi] of SLIDERS[l.type] || []) {
      const value = l[key] ?? (key === "stride" ? l.kernel_size : 0);
      const out = h("output", { text: String(value) });
      const input = h("input", { type: "range", min: String(lo), max: String(hi), step: "1", value: String(value),
        "data-field": key, "aria-label": t("pg.field." + key),
        oninput: (e) => { l[key] = Number(e.target.value); out.textContent = e.target.value; changed(); } });
      fields.append(h("label", { class: "pg-slider" }, h("span", { text: t("pg.field." + key) }), input, out));
    }
    if (l.type === "conv2d" || l.type === "dense" || l.type === "residual") {
      const acts = l.type === "dense" ? [...ACTS, "softmax"] : ACTS;
      const sel = h("select", { "aria-label": t("pg.field.activation"), "data-field": "activation",
        onchange: (e) => { l.activation = e.target.value; changed(); } });
      for (const a of acts) sel.append(h("option", { value: a, text: a }));
      sel.value = l.activation || "identity";
      fields.append(h("label", { class: "pg-slider" }, h("span", { text: t("pg.field.activation") }), sel));
    }
    if (l.type === "residual") {
      const cb = h("input", { type: "checkbox", "data-field": "projection", checked: Boolean(l.projection),
        onchange: (e) => { l.projection = e.target.checked ? { type: "conv2d", kernel_size: 1, stride: 1 } : null; changed(); } });
      fields.append(h("label", { class: "pg-slider" }, cb, h("span", { text: t("pg.field.projection") })));
      if (l.projection) {
        const out = h("output", { text: String(l.projection.stride) });
        fields.append(h("label", { class: "pg-slider" }, h("span", { text: t("pg.field.projStride") }),
          h("input", { type: "range", min: "1", max: "3", value: String(l.projection.stride), "data-field": "projection-stride",
            "aria-label": t("pg.field.projStride"),
            oninput: (e) => { l.projection.stride = Number(e.target.value); out.textContent = e.target.value; changed(); } }), out));
      }
    }
    li.append(fields);
    if (r.formula) li.append(h("p", { class: "pg-formula", "data-role": "formula", text: r.formula }));
    if (r.error) li.append(h("p", { class: "pg-error", role: "alert", "data-role": "error", text: r.error }));
    if (l.type === "residual") {
      li.append(h("p", { class: "pg-sub", text: t("pg.F") }), list(l.layers, r.inner || [], `${id}.`, true));
    }
    if (l.type === "concat") {
      l.branches.forEach((b, k) => {
        const rm = h("button", { type: "button", class: "pg-branch-rm", disabled: l.branches.length <= 1,
          onclick: () => { l.branches.splice(k, 1); changed(); } }, t("pg.removeBranch"));
        li.append(h("p", { class: "pg-sub" }, t("pg.branch", { b: k + 1 }), " ", rm),
          list(b, (r.branches || [])[k] || [], `${id}.${k}.`, true));
      });
      li.append(h("button", { type: "button", class: "pg-add", onclick: () => { l.branches.push([NEW.conv2d()]); changed(); } }, t("pg.addBranch")));
    }
    return li;
  }

  function render() {
    const res = walk(net.layers, inputShape(), t);
    const n = countLayers(net.layers);
    const madds = res.rows.reduce((a, r) => a + (r.madds || 0), 0);
    const params = res.rows.reduce((a, r) => a + (r.params || 0), 0);
    const problems = [];
    if (limits) {
      if (n > limits.max_layers) problems.push(t("pg.err.capLayers", { n, cap: limits.max_layers }));
      const c = maxChannels(net.layers);
      if (c > limits.max_channels) problems.push(t("pg.err.capChannels", { c, cap: limits.max_channels }));
      if (madds > limits.max_multiply_adds) problems.push(t("pg.err.capMadds", { m: madds.toLocaleString(), cap: limits.max_multiply_adds.toLocaleString() }));
    }
    if (!net.layers.length) problems.push(t("pg.err.noLayers"));
    const valid = res.shape && !problems.length;
    const inputSel = h("select", { id: "pg-input", "aria-label": t("pg.input"),
      onchange: (e) => { net.input = e.target.value; changed(); } },
    h("option", { value: "digit", text: t("pg.inputDigit") }), h("option", { value: "small", text: t("pg.inputSmall") }));
    inputSel.value = net.input;
    const limitsText = limits
      ? t("pg.limits", { layers: limits.max_layers, channels: limits.max_channels, madds: limits.max_multiply_adds.toLocaleString() })
      : t("pg.limitsUnknown");
    const over = Boolean(limits && madds > limits.max_multiply_adds);
    const summary = h("p", { class: "pg-summary" + (over ? " over" : ""), id: "pg-summary", "data-valid": String(Boolean(valid)),
      "data-over-madds": String(over) },
      res.shape ? t("pg.summary", { shape: shapeText(res.shape), n, params: params.toLocaleString(), madds: madds.toLocaleString() }) : t("pg.invalid"));
    const traceBtn = h("button", { type: "button", class: "primary", id: "pg-trace", disabled: !valid,
      onclick: () => run() }, t("pg.trace"));
    const linkBtn = h("button", { type: "button", id: "pg-link", onclick: () => copyLink() }, t("pg.link"));
    const errs = h("div", { id: "pg-problems" }, ...problems.map((p) => h("p", { class: "pg-error", role: "alert", text: p })));
    root.replaceChildren(
      h("div", { class: "card-head" }, h("h2", { text: t("pg.title") }),
        h("button", { type: "button", onclick: () => { net = DEFAULT(); changed(); } }, t("pg.reset"))),
      h("p", { class: "hint", text: t("pg.hint") }),
      h("p", { class: "hint pg-limits", id: "pg-limits", text: limitsText }),
      h("label", { class: "field" }, h("span", { text: t("pg.input") }), inputSel),
      h("p", { class: "pg-input-shape", text: `${t("layer.input")} ${shapeText(inputShape())}` }),
      list(net.layers, res.rows, "", false),
      summary, errs, h("div", { class: "row" }, traceBtn, linkBtn));
    document.body.dataset.playground = valid ? "valid" : "invalid";
    const sp = spec();
    const tenClasses = valid && sp.loss === "cross_entropy" && res.shape.length === 1 && res.shape[0] === 10;
    currentSpec = valid && net.input === "digit" && tenClasses ? sp : null;
    const reason = !valid ? "invalid" : net.input !== "digit" ? "input" : !tenClasses ? "output" : null;
    currentStatus = { spec: currentSpec, reason, shape: res.shape, madds, layers: n };
  }

  async function run() {
    await limitsReady;
    render();
    // a shape error or a network over the server's limits is explained on the page, not sent
    if (document.body.dataset.playground !== "valid") return;
    const s = spec();
    const input = net.input === "digit" ? digit() || Array.from({ length: 28 }, () => new Array(28).fill(0)) : SMALL_INPUT;
    const res = walk(net.layers, inputShape(), t);
    const out = res.shape;
    const target = s.loss === "cross_entropy" ? 0 : zeros(out);
    shared = encode(net);
    history.replaceState(null, "", `${location.pathname}${location.search}#net=${shared}`);
    try {
      // the server's seeded initialisation (He for relu, Xavier otherwise), as explicit params
      // the worked-example machinery (editing, learning steps) can carry
      const r = await fetch("/api/trace", { method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ network: s, seed: 0, input, target, include: ["params"] }) });
      const body = await r.json();
      if (!r.ok) {
        const d = Array.isArray(body.detail) ? body.detail[0] : { msg: String(body.detail) };
        $("pg-problems").replaceChildren(h("p", { class: "pg-error", role: "alert", text: t("pg.server", { msg: d.msg }) }));
        return;
      }
      await traceNetwork(s, input, target, body.layers.map(flatParams), body.network);
      const ov = $("overview");
      if (ov && ov.scrollIntoView) ov.scrollIntoView({ block: "nearest" });
    } catch (err) {
      status(t("status.error", { msg: err.message }));
    }
  }

  async function copyLink() {
    const url = `${location.origin}${location.pathname}${location.search}#net=${encode(net)}`;
    $("pg-link").dataset.url = url;
    try {
      await navigator.clipboard.writeText(url);
      status(t("pg.linkCopied"));
    } catch {
      status(url);
    }
  }
}

/** A trace entry's parameters as the API takes them: a block's as one flat dotted dict. */
export function flatParams(entry) {
  const out = {};
  const put = (prefix, e) => Object.entries(flatParams(e)).forEach(([k, v]) => { out[`${prefix}.${k}`] = v; });
  if (entry.type === "residual") {
    entry.layers.forEach((e, j) => put(`layers.${j}`, e));
    if (entry.projection) put("projection", entry.projection);
    return out;
  }
  if (entry.type === "concat") {
    entry.branches.forEach((chain, b) => chain.forEach((e, j) => put(`branches.${b}.${j}`, e)));
    return out;
  }
  return { ...(entry.params || {}) };
}

function zeros(shape) {
  if (shape.length === 1) return new Array(shape[0]).fill(0);
  return Array.from({ length: shape[0] }, () => zeros(shape.slice(1)));
}

function encode(net) {
  const bytes = new TextEncoder().encode(JSON.stringify(net));
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function fromHash() {
  const m = /#net=([A-Za-z0-9_-]+)/.exec(location.hash);
  if (!m) return null;
  try {
    const b = atob(m[1].replace(/-/g, "+").replace(/_/g, "/"));
    const net = JSON.parse(new TextDecoder().decode(Uint8Array.from(b, (c) => c.charCodeAt(0))));
    return net && Array.isArray(net.layers) && (net.input === "digit" || net.input === "small") ? net : null;
  } catch {
    return null;
  }
}
