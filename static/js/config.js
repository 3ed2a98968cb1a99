// Every tunable of the UI in one place: colours, sizes, timings. No example numbers live here.

export const CONFIG = Object.freeze({
  defaultModel: "digits",
  // Learning rate of "Apply one step" on the digit model. Measured: with a drawn 1 or 0 and
  // another target class, the loss falls at every step and the target wins in 3–5 steps; 0.05
  // overshoots. (Worked examples get a rate suggested from their own trace: session.js.)
  learningRate: 0.002,
  predictDebounceMs: 40,      // while drawing, at most one /api/predict in flight, this long apart
  traceDebounceMs: 150,       // after a stroke ends, the trace follows
  pad: { size: 252, lineWidth: 20, ink: "#0f172a", paper: "#ffffff" },
  colors: {
    negative: [37, 99, 235],  // blue
    zero: [248, 250, 252],    // near-white
    positive: [194, 65, 12],  // orange (#c2410c: white text on it is 5.2:1)
    empty: "#e2e8f0",
    padding: "#cbd5e1",
    grid: "rgba(15, 23, 42, 0.18)",
    text: "#0f172a",
    textOnDark: "#ffffff",
    focus: "#0f172a",
    window: "#16a34a",        // the sliding window
    kernel: "#7c3aed",        // kernel / weights
    highlight: "#facc15",     // max, selected cell, receptive field
    uncovered: "#ef4444",     // cells no window covers (stride)
  },
  // Maps at most this many cells per side print every number; larger ones are heatmaps.
  numbersMaxSide: 12,
  // numberMin: cells at least this many pixels print their number (heatmap.js fits it: fewer digits,
  // a compact exponent, a smaller font); smaller ones are colours, and the view says so.
  cell: { min: 3, max: 60, numberMin: 20, zoom: 40 },
  overview: { mapMax: 72, colMax: 200, vectorRowsMax: 64 },
  // Speed multipliers; a sweep over all positions takes sweepSeconds / multiplier.
  speeds: [0.25, 0.5, 1, 2, 4, 8],
  defaultSpeed: 1,
  sweepSeconds: 6,
  minPositionsPerSecond: 1.5,
  dwellSeconds: 2.5,          // autoplay: how long a step without a sweep stays on screen
  // Long sums: up to formulaAllTerms terms every term is printed (zeros too); longer ones print
  // their non-zero terms, at most formulaMaxTerms of them (the largest), then "+ the rest".
  formulaMaxTerms: 16,
  formulaAllTerms: 36,
  legendSteps: 5,
});
