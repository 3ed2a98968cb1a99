// The drawing pad: pointer events (mouse, touch, pen), undo and clear. Reports the drawing as an
// H×W grid of ink values in [0, 1] (ink = 1), downsampled so requests stay small.

import { CONFIG } from "../config.js";
import { FONT } from "./heatmap.js";

const SEND_SIZE = 112; // pixels per side sent to /api/predict (the server makes the 28×28)

export class Pad {
  /** onChange(image, {final, version}) is called while drawing (final = false) and at stroke end. */
  constructor(canvas, { onChange }) {
    this.canvas = canvas;
    this.onChange = onChange;
    this.strokes = [];
    this.current = null;
    this.version = 0;
    this.ctx = canvas.getContext("2d");
    this.small = document.createElement("canvas");
    this.small.width = SEND_SIZE;
    this.small.height = SEND_SIZE;
    this.sctx = this.small.getContext("2d", { willReadFrequently: true });
    canvas.addEventListener("pointerdown", (e) => this.down(e));
    canvas.addEventListener("pointermove", (e) => this.move(e));
    canvas.addEventListener("pointerup", (e) => this.up(e));
    canvas.addEventListener("pointercancel", (e) => this.up(e));
    canvas.addEventListener("keydown", (e) => this.key(e));
    this.redraw();
  }

  point(e) {
    const r = this.canvas.getBoundingClientRect();
    return [(e.clientX - r.left) / r.width, (e.clientY - r.top) / r.height];
  }

  down(e) {
    if (e.button !== undefined && e.button !== 0) return;
    e.preventDefault();
    this.canvas.setPointerCapture(e.pointerId);
    this.current = [this.point(e)];
    this.strokes.push(this.current);
    this.changed(false);
  }

  move(e) {
    if (!this.current) return;
    e.preventDefault();
    const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
    for (const ev of events.length ? events : [e]) this.current.push(this.point(ev));
    this.changed(false);
  }

  up(e) {
    if (!this.current) return;
    e.preventDefault();
    this.current = null;
    this.changed(true);
  }

  key(e) {
    if ((e.key === "z" && (e.ctrlKey || e.metaKey)) || e.key === "Backspace") {
      e.preventDefault();
      this.undo();
    } else if (e.key === "Delete" || e.key === "Escape") {
      e.preventDefault();
      this.clear();
    }
  }

  undo() {
    this.strokes.pop();
    this.changed(true);
  }

  clear() {
    this.strokes = [];
    this.background = null;
    this.changed(true);
  }

  isEmpty() {
    return this.strokes.length === 0 && !this.background;
  }

  /**
   * Show an H×W ink map (a shared link's network input) under the strokes; drawing continues on
   * top of it, and Clear removes it. Does not report a change (the caller traces the map itself).
   */
  setBackground(map) {
    const c = document.createElement("canvas");
    c.width = map[0].length;
    c.height = map.length;
    paintSeen(c, map);
    this.background = c;
    this.strokes = [];
    this.redraw();
  }

  changed(final) {
    this.version += 1;
    this.canvas.dataset.version = String(this.version);
    this.redraw();
    this.onChange(this.image(), { final, version: this.version });
  }

  paint(ctx, size) {
    const { ink, paper, lineWidth } = CONFIG.pad;
    ctx.fillStyle = paper;
    ctx.fillRect(0, 0, size, size);
    if (this.background) ctx.drawImage(this.background, 0, 0, size, size);
    ctx.strokeStyle = ink;
    ctx.fillStyle = ink;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.lineWidth = (lineWidth / CONFIG.pad.size) * size;
    for (const s of this.strokes) {
      if (s.length === 1) {
        ctx.beginPath();
        ctx.arc(s[0][0] * size, s[0][1] * size, ctx.lineWidth / 2, 0, 2 * Math.PI);
        ctx.fill();
        continue;
      }
      ctx.beginPath();
      s.forEach(([x, y], k) => (k ? ctx.lineTo(x * size, y * size) : ctx.moveTo(x * size, y * size)));
      ctx.stroke();
    }
  }

  redraw() {
    this.paint(this.ctx, this.canvas.width);
    if (this.isEmpty() && this.placeholder) {
      const c = this.ctx;
      c.fillStyle = "#64748b"; // 4.8:1 on white
      c.font = `15px ${FONT}`;
      c.textAlign = "center";
      c.textBaseline = "middle";
      c.fillText(this.placeholder, this.canvas.width / 2, this.canvas.height / 2);
    }
  }

  /** The prompt shown on the empty pad (translated by the caller). */
  setPlaceholder(text) {
    this.placeholder = text;
    this.redraw();
  }

  /** The drawing as SEND_SIZE rows of ink values (1 = ink, 0 = paper), 3 decimals. */
  image() {
    this.paint(this.sctx, SEND_SIZE);
    const data = this.sctx.getImageData(0, 0, SEND_SIZE, SEND_SIZE).data;
    const rows = [];
    for (let i = 0; i < SEND_SIZE; i++) {
      const row = new Array(SEND_SIZE);
      for (let j = 0; j < SEND_SIZE; j++) {
        const v = 1 - data[(i * SEND_SIZE + j) * 4] / 255;
        row[j] = Math.round(v * 1000) / 1000;
      }
      rows.push(row);
    }
    return rows;
  }
}

/** Paint the 28×28 the network sees (ink dark on white, as on the pad). */
export function paintSeen(canvas, input) {
  const h = input.length;
  const w = input[0].length;
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(w, h);
  for (let i = 0; i < h; i++) {
    for (let j = 0; j < w; j++) {
      const v = Math.round(255 * (1 - Math.max(0, Math.min(1, input[i][j]))));
      const o = (i * w + j) * 4;
      img.data[o] = img.data[o + 1] = img.data[o + 2] = v;
      img.data[o + 3] = 255;
    }
  }
  ctx.putImageData(img, 0, 0);
}
