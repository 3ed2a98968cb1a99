// The diverging colour scale: blue for negative, near-white for zero, orange for positive.

import { CONFIG } from "../config.js";

const N = 256;
// LUT[k] for k in 0..255 maps t = k / 255 in [0, 1] (0 = -max, 0.5 = 0, 1 = +max) to RGB.
const LUT = new Uint8ClampedArray(N * 3);
(function build() {
  const { negative, zero, positive } = CONFIG.colors;
  for (let k = 0; k < N; k++) {
    const t = k / (N - 1);
    const s = Math.abs(t - 0.5) * 2;
    const end = t < 0.5 ? negative : positive;
    const e = Math.pow(s, 0.85); // a slight lift so small values stay visible
    for (let c = 0; c < 3; c++) LUT[k * 3 + c] = Math.round(zero[c] + (end[c] - zero[c]) * e);
  }
})();

/** Index into the LUT for value v under a symmetric scale [-maxAbs, maxAbs]. */
export function lutIndex(v, maxAbs) {
  if (!Number.isFinite(v)) return v > 0 ? N - 1 : v < 0 ? 0 : 128;
  const m = maxAbs > 0 ? maxAbs : 1;
  const t = Math.max(-1, Math.min(1, v / m));
  return Math.round((t + 1) * 0.5 * (N - 1));
}

/** The LUT's red, green, blue bytes of index k at [3k, 3k + 1, 3k + 2] (read-only). */
export function lut() {
  return LUT;
}

export function rgb(v, maxAbs) {
  const k = lutIndex(v, maxAbs) * 3;
  return [LUT[k], LUT[k + 1], LUT[k + 2]];
}

export function cssColor(v, maxAbs) {
  const [r, g, b] = rgb(v, maxAbs);
  return `rgb(${r},${g},${b})`;
}

/** WCAG relative luminance of an sRGB colour. */
function luminance([r, g, b]) {
  const c = (x) => {
    const s = x / 255;
    return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * c(r) + 0.7152 * c(g) + 0.0722 * c(b);
}

const DARK_L = luminance([15, 23, 42]); // CONFIG.colors.text, #0f172a

/** Dark or white text, whichever contrasts more with the cell (WCAG contrast ratio). */
export function textColor(v, maxAbs) {
  const L = luminance(rgb(v, maxAbs));
  return 1.05 / (L + 0.05) > (L + 0.05) / (DARK_L + 0.05) ? CONFIG.colors.textOnDark : CONFIG.colors.text;
}

/** A horizontal legend bar as an ImageData-backed canvas (width w, height h). */
export function legendCanvas(w, h) {
  const c = document.createElement("canvas");
  c.width = w;
  c.height = h;
  const ctx = c.getContext("2d");
  const img = ctx.createImageData(w, h);
  for (let x = 0; x < w; x++) {
    const k = Math.round((x / Math.max(1, w - 1)) * (N - 1)) * 3;
    for (let y = 0; y < h; y++) {
      const o = (y * w + x) * 4;
      img.data[o] = LUT[k];
      img.data[o + 1] = LUT[k + 1];
      img.data[o + 2] = LUT[k + 2];
      img.data[o + 3] = 255;
    }
  }
  ctx.putImageData(img, 0, 0);
  return c;
}
