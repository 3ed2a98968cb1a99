// Canvas drawing for the Train view: grey images, diverging kernels and maps, and the curves.
// Drawing only: every value comes from the server's messages.

/** A canvas sized for the device's pixel ratio; returns its 2D context in CSS pixels. */
export function hiDpi(canvas) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || canvas.width;
  const h = canvas.clientHeight || canvas.height;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  return { ctx, w, h };
}

/** Paint a 2-D array onto a canvas of its size: grey (0..255 ink = dark) or diverging. */
export function paintGrid(canvas, rows, { mode = "u8", scale = null } = {}) {
  const h = rows.length;
  const w = rows[0].length;
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(w, h);
  let m = scale;
  if (mode !== "u8" && m === null) {
    m = 0;
    for (const r of rows) for (const v of r) m = Math.max(m, Math.abs(v));
    m = m || 1;
  }
  let o = 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++, o += 4) {
      const v = rows[y][x];
      let r, g, b;
      if (mode === "u8") {
        r = g = b = 255 - v;
      } else if (mode === "pos") {
        const s = Math.min(1, Math.max(0, v / m));
        r = g = b = Math.round(255 * (1 - s));
      } else {
        const s = Math.max(-1, Math.min(1, v / m));
        // blue for positive, orange for negative, white for 0 (the page's fwd / bwd colours)
        if (s >= 0) [r, g, b] = [255 - 218 * s, 255 - 156 * s, 255 - 20 * s];
        else [r, g, b] = [255 + 61 * s, 255 + 190 * s, 255 + 243 * s];
      }
      img.data[o] = r;
      img.data[o + 1] = g;
      img.data[o + 2] = b;
      img.data[o + 3] = 255;
    }
  }
  ctx.putImageData(img, 0, 0);
}

/** Fill `box` with one canvas per image (reusing canvases), each painted by `paint`. */
export function thumbs(box, items, paint, label) {
  while (box.children.length > items.length) box.lastChild.remove();
  while (box.children.length < items.length) {
    const c = document.createElement("canvas");
    c.className = "thumb";
    c.setAttribute("role", "img");
    box.append(c);
  }
  items.forEach((it, i) => {
    const c = box.children[i];
    paint(c, it, i);
    if (label) c.setAttribute("aria-label", label(it, i));
  });
}

function niceTicks(lo, hi, n) {
  const span = hi - lo || 1;
  const step0 = span / n;
  const e = Math.pow(10, Math.floor(Math.log10(step0)));
  const m = step0 / e;
  const step = (m >= 5 ? 10 : m >= 2 ? 5 : m >= 1 ? 2 : 1) * e;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-12; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

function fmt(v) {
  if (v === 0) return "0";
  const a = Math.abs(v);
  return a >= 1000 ? String(Math.round(v)) : a >= 1 ? String(Number(v.toPrecision(3))) : String(Number(v.toPrecision(2)));
}

/**
 * A line chart with axes and tick numbers. series: [{xs, ys, color, width}], drawn decimated to
 * at most two points (min and max) per pixel column, so 100k steps draw as fast as 500.
 */
export function lineChart(canvas, series, { xLabel, yLabel, yMin = null, yMax = null, xMax = null, percent = false }) {
  const { ctx, w, h } = hiDpi(canvas);
  const L = 46, R = 20, T = 10, B = 30;
  ctx.clearRect(0, 0, w, h);
  ctx.font = "11px system-ui, sans-serif";
  let x1 = xMax ?? 1, y0 = yMin, y1 = yMax;
  for (const s of series) {
    if (s.xs.length) x1 = Math.max(x1, s.xs[s.xs.length - 1]);
    if (yMin === null || yMax === null) {
      for (const v of s.ys) {
        if (!Number.isFinite(v)) continue;
        if (yMin === null) y0 = y0 === null ? v : Math.min(y0, v);
        if (yMax === null) y1 = y1 === null ? v : Math.max(y1, v);
      }
    }
  }
  if (y0 === null || y1 === null) [y0, y1] = [0, 1];
  if (y1 - y0 < 1e-9) y1 = y0 + 1;
  const pw = w - L - R, ph = h - T - B;
  const X = (x) => L + (x / x1) * pw;
  const Y = (y) => T + (1 - (y - y0) / (y1 - y0)) * ph;
  // axes, grid, ticks
  ctx.strokeStyle = "#dbe3ee";
  ctx.fillStyle = "#475569";
  ctx.lineWidth = 1;
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (const v of niceTicks(y0, y1, 4)) {
    const y = Math.round(Y(v)) + 0.5;
    ctx.beginPath();
    ctx.moveTo(L, y);
    ctx.lineTo(w - R, y);
    ctx.stroke();
    ctx.fillText(percent ? `${Number((v * 100).toPrecision(3))}%` : fmt(v), L - 4, y);
  }
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  for (const v of niceTicks(0, x1, 5)) {
    const x = Math.round(X(v)) + 0.5;
    ctx.beginPath();
    ctx.moveTo(x, T + ph);
    ctx.lineTo(x, T + ph + 4);
    ctx.stroke();
    ctx.fillText(fmt(v), x, T + ph + 5);
  }
  ctx.strokeStyle = "#475569";
  ctx.beginPath();
  ctx.moveTo(L + 0.5, T);
  ctx.lineTo(L + 0.5, T + ph + 0.5);
  ctx.lineTo(w - R, T + ph + 0.5);
  ctx.stroke();
  ctx.fillText(xLabel, L + pw / 2, h - 12);
  ctx.save();
  ctx.translate(10, T + ph / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.textBaseline = "middle";
  ctx.fillText(yLabel, 0, 0);
  ctx.restore();
  // the series
  ctx.save();
  ctx.beginPath();
  ctx.rect(L, T - 1, pw, ph + 2);
  ctx.clip();
  for (const s of series) {
    const n = s.xs.length;
    if (!n) continue;
    ctx.strokeStyle = s.color;
    ctx.lineWidth = s.width || 1.5;
    ctx.beginPath();
    let col = -1, lo = 0, hi = 0, first = true;
    const flush = () => {
      if (col < 0) return;
      const yl = Y(lo), yh = Y(hi);
      if (first) { ctx.moveTo(col, yl); first = false; } else ctx.lineTo(col, yl);
      if (yh !== yl) ctx.lineTo(col, yh);
    };
    for (let i = 0; i < n; i++) {
      const v = s.ys[i];
      if (!Number.isFinite(v)) continue;
      const c = Math.round(X(s.xs[i]));
      if (c !== col) {
        flush();
        col = c;
        lo = hi = v;
      } else {
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
    }
    flush();
    ctx.stroke();
    if (s.dots) {
      ctx.fillStyle = s.color;
      for (let i = 0; i < n; i++) {
        ctx.beginPath();
        ctx.arc(X(s.xs[i]), Y(s.ys[i]), 2.5, 0, 2 * Math.PI);
        ctx.fill();
      }
    }
  }
  ctx.restore();
}
