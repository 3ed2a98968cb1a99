// The playground's live shape check: each layer's output shape, the formula that gives it with
// the numbers filled in (H_out = ⌊(H + 2p − k) / s⌋ + 1), and a plain-words error for a choice
// the server would refuse. The server (cnncore.registry) stays the authority: "Trace it" sends
// the spec, and its answer is what the page shows.

const prod = (s) => s.reduce((a, b) => a * b, 1);
const out = (h, k, s, p) => Math.floor((h + 2 * p - k) / s) + 1;
export const shapeText = (s) => s.join("×");

/** Walk a layer list from `shape`: [{shape, formula, error, madds, params}], output shape. */
export function walk(layers, shape, t, isTop = true) {
  const rows = [];
  let cur = shape;
  let bad = false;
  layers.forEach((l, i) => {
    const r = bad ? { shape: null, error: null } : one(l, cur, t, isTop && i === layers.length - 1);
    rows.push(r);
    if (r.error || !r.shape) bad = true;
    else cur = r.shape;
  });
  return { rows, shape: bad ? null : cur };
}

function windowed(l, shape, t, pool) {
  if (shape.length !== 3) return { error: t("pg.err.needsMaps", { shape: shapeText(shape) }) };
  const k = l.kernel_size;
  const s = pool ? (l.stride ?? k) : l.stride;
  const p = l.padding;
  const [c, h, w] = shape;
  if (pool && p > Math.floor(k / 2)) return { error: t("pg.err.poolPad", { p, k }) };
  if (h + 2 * p < k || w + 2 * p < k) {
    return { error: t("pg.err.kernel", { k, h: Math.min(h, w) + 2 * p, size: Math.min(h, w), p }) };
  }
  const ho = out(h, k, s, p);
  const wo = out(w, k, s, p);
  const formula = `H_out = ⌊(${h} + 2·${p} − ${k}) / ${s}⌋ + 1 = ${ho}` + (w !== h ? `, W_out = ⌊(${w} + 2·${p} − ${k}) / ${s}⌋ + 1 = ${wo}` : "");
  return { c, ho, wo, formula };
}

function one(l, shape, t, isLast) {
  if (l.type === "conv2d") {
    const r = windowed(l, shape, t, false);
    if (r.error) return r;
    const s = [l.out_channels, r.ho, r.wo];
    return { shape: s, formula: r.formula, madds: prod(s) * shape[0] * l.kernel_size ** 2, params: l.out_channels * (shape[0] * l.kernel_size ** 2 + 1), channels: l.out_channels };
  }
  if (l.type === "maxpool2d" || l.type === "avgpool2d") {
    const r = windowed(l, shape, t, true);
    if (r.error) return r;
    const s = [r.c, r.ho, r.wo];
    return { shape: s, formula: r.formula, madds: prod(s) * l.kernel_size ** 2, params: 0 };
  }
  if (l.type === "flatten") return { shape: [prod(shape)], formula: `${shapeText(shape)} = ${prod(shape)}`, madds: 0, params: 0 };
  if (l.type === "dense") {
    if (shape.length !== 1) return { error: t("pg.err.dense", { shape: shapeText(shape) }) };
    if (l.activation === "softmax" && !isLast) return { error: t("pg.err.softmax") };
    return { shape: [l.units], formula: `${shape[0]} → ${l.units}`, madds: l.units * shape[0], params: l.units * (shape[0] + 1) };
  }
  if (l.type === "residual") {
    if (!l.layers.length) return { error: t("pg.err.empty") };
    const inner = walk(l.layers, shape, t, false);
    const res = { inner: inner.rows };
    if (!inner.shape) return { ...res, error: t("pg.err.inside") };
    const last = l.layers[l.layers.length - 1];
    if (last.activation && last.activation !== "identity") return { ...res, error: t("pg.err.lastAct") };
    const f = inner.shape;
    const madds = inner.rows.reduce((a, r) => a + (r.madds || 0), 0) + prod(f);
    const params = inner.rows.reduce((a, r) => a + (r.params || 0), 0);
    if (l.projection) {
      if (shape.length !== 3 || f.length !== 3) return { ...res, error: t("pg.err.projFlat") };
      const s = l.projection.stride;
      const ps = [f[0], out(shape[1], 1, s, 0), out(shape[2], 1, s, 0)];
      if (shapeText(ps) !== shapeText(f)) return { ...res, error: t("pg.err.projShape", { got: shapeText(ps), f: shapeText(f), s }) };
      return { ...res, shape: f, formula: t("pg.resFormulaProj", { f: shapeText(f), s }), madds, params: params + f[0] * (shape[0] + 1) };
    }
    if (shapeText(f) !== shapeText(shape)) {
      const hint = shape.length === 3 && f.length === 3 ? suggestStride(shape, f) : null;
      return { ...res, error: t(hint ? "pg.err.needProj" : "pg.err.needSame", { x: shapeText(shape), f: shapeText(f), s: hint }) };
    }
    return { ...res, shape: f, formula: t("pg.resFormula", { f: shapeText(f) }), madds, params };
  }
  if (l.type === "concat") {
    if (!l.branches.length) return { error: t("pg.err.empty") };
    const walks = l.branches.map((b) => (b.length ? walk(b, shape, t, false) : { rows: [], shape: null, empty: true }));
    const res = { branches: walks.map((w) => w.rows) };
    const bi = walks.findIndex((w) => !w.shape);
    if (bi >= 0) return { ...res, error: t(walks[bi].empty ? "pg.err.emptyBranch" : "pg.err.insideBranch", { b: bi + 1 }) };
    const first = walks[0].shape;
    for (let b = 1; b < walks.length; b++) {
      const s = walks[b].shape;
      if (s.length !== first.length || shapeText(s.slice(1)) !== shapeText(first.slice(1))) {
        return { ...res, error: t("pg.err.concat", { b: b + 1, s: shapeText(s), f: shapeText(first) }) };
      }
    }
    const c = walks.reduce((a, w) => a + w.shape[0], 0);
    const madds = walks.reduce((a, w) => a + w.rows.reduce((x, r) => x + (r.madds || 0), 0), 0);
    const params = walks.reduce((a, w) => a + w.rows.reduce((x, r) => x + (r.params || 0), 0), 0);
    return { ...res, shape: [c, ...first.slice(1)], formula: walks.map((w) => w.shape[0]).join(" + ") + ` = ${c}`, madds, params };
  }
  return { error: "?" };
}

function suggestStride(x, f) {
  for (let s = 1; s <= Math.max(x[1], x[2]); s++) if (out(x[1], 1, s, 0) === f[1] && out(x[2], 1, s, 0) === f[2]) return s;
  return null;
}

/** Every layer of a list, nested ones included (what the server's layer cap counts). */
export function countLayers(layers) {
  let n = 0;
  for (const l of layers) {
    n += 1;
    if (l.type === "residual") n += countLayers(l.layers) + (l.projection ? 1 : 0);
    if (l.type === "concat") for (const b of l.branches) n += countLayers(b);
  }
  return n;
}

/** The largest out_channels anywhere. */
export function maxChannels(layers) {
  let m = 0;
  for (const l of layers) {
    if (l.out_channels) m = Math.max(m, l.out_channels);
    if (l.type === "residual") m = Math.max(m, maxChannels(l.layers));
    if (l.type === "concat") for (const b of l.branches) m = Math.max(m, maxChannels(b));
  }
  return m;
}
