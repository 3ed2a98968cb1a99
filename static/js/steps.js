// The ordered steps of one trace: forward per layer, the loss, then backward per layer in reverse.
// Derived only from the layer types and activations the API returns. Blocks are walked into:
// a residual block's forward is F's layers (and the projection), the add, the activation; its
// backward the activation, the split of ∂C/∂z to both paths, F's layers in reverse (and the
// projection), and the sum at the block's input. A concat block's forward is each branch, then
// the join; its backward the slicing, each branch in reverse, and the sum at the shared input.

import { present } from "./api.js";

function hasActivation(layer) {
  return layer.activation && layer.activation !== "identity";
}

const BLOCKS = ["residual", "concat"];

/** Whether a layer spec is a block (it holds layer lists of its own). */
export function isBlock(spec) {
  return Boolean(spec) && BLOCKS.includes(spec.type);
}

/**
 * @param trace the /api/trace response
 * @returns [{kind, phase, layer, column, grad, spec?, entry?, label?}] where `column` is the
 *          overview column in focus (0 = the input, i + 1 = the output of layer i), `grad` says
 *          the overview shows dC/da, `layer` is the top-level layer; steps inside a block carry
 *          the inner layer's `spec` and trace `entry` and a `label` such as "2 › F 1".
 */
export function buildSteps(trace) {
  const specs = trace.network.layers;
  const steps = [];
  const last = specs.length - 1;
  const ceSoftmax = (i) => (i === last && trace.network.loss === "cross_entropy" ? "ce" : "jacobian");

  function forward(spec, entry, i, extra) {
    const add = (kind) => steps.push({ phase: "forward", kind, layer: i, column: i + 1, grad: false, ...extra, spec, entry });
    if (spec.type === "residual") {
      spec.layers.forEach((s, j) => forward(s, entry.layers[j], i, { label: `${extra.label} › F ${j + 1}` }));
      if (spec.projection) forward(spec.projection, entry.projection, i, { label: `${extra.label} › ${"proj"}` });
      add("res_add");
      if (hasActivation(spec)) add("activation");
      return;
    }
    if (spec.type === "concat") {
      spec.branches.forEach((chain, b) => chain.forEach((s, j) =>
        forward(s, entry.branches[b][j], i, { label: `${extra.label} › B${b + 1} ${j + 1}` })));
      add("concat_join");
      return;
    }
    if (spec.type === "conv2d") add("conv");
    else if (spec.type === "dense") add("dense");
    else if (spec.type === "flatten") add("flatten");
    else add("pool");
    if (hasActivation(spec)) add("activation");
  }

  function backward(spec, entry, i, extra, top) {
    const add = (kind, column, more = {}) =>
      steps.push({ phase: "backward", kind, layer: i, column, grad: true, ...extra, spec, entry, ...more });
    const inBlock = !top;
    const col = i + 1;
    const inCol = inBlock ? i + 1 : i; // inside a block the gradient stays in the block's column
    if (spec.type === "residual") {
      if (hasActivation(spec)) add("activation_back", col);
      add("res_split", col);
      for (let j = spec.layers.length - 1; j >= 0; j--) {
        backward(spec.layers[j], entry.layers[j], i, { label: `${extra.label} › F ${j + 1}` }, false);
      }
      if (spec.projection) backward(spec.projection, entry.projection, i, { label: `${extra.label} › proj` }, false);
      add("res_sum", top ? i : col);
      return;
    }
    if (spec.type === "concat") {
      add("concat_split", col);
      for (let b = spec.branches.length - 1; b >= 0; b--) {
        const chain = spec.branches[b];
        for (let j = chain.length - 1; j >= 0; j--) {
          backward(chain[j], entry.branches[b][j], i, { label: `${extra.label} › B${b + 1} ${j + 1}` }, false);
        }
      }
      add("concat_sum", top ? i : col);
      return;
    }
    if (spec.type === "conv2d" || spec.type === "dense") {
      if (hasActivation(spec)) {
        add("activation_back", col);
        // softmax has a full Jacobian; with cross-entropy the two combine into a − y.
        if (spec.activation === "softmax") steps[steps.length - 1].softmax = ceSoftmax(i);
      }
      add("bias_grad", col);
      add("weight_grad", col);
      if (present(entry.backward, "dC_da_prev")) add("input_grad", inCol);
    } else if (spec.type === "flatten") {
      add("flatten_back", inCol);
    } else {
      add("pool_back", inCol);
    }
  }

  const plain = (k) => ({ label: String(k + 1) });
  specs.forEach((spec, i) => forward(spec, trace.layers[i], i, plain(i)));
  steps.push({ phase: "loss", kind: "loss", layer: specs.length - 1, column: specs.length, grad: true,
    spec: specs[last], entry: trace.layers[last], label: String(specs.length) });
  for (let i = specs.length - 1; i >= 0; i--) backward(specs[i], trace.layers[i], i, plain(i), true);
  // top-level steps keep today's shape: their spec and entry are the trace's own
  for (const s of steps) {
    if (!s.label.includes("›")) {
      delete s.spec;
      delete s.entry;
      delete s.label;
    }
  }
  return steps;
}

/** The i18n key of a step's title. */
export function stepTitleKey(step, spec) {
  spec = step.spec || spec;
  if (step.kind === "pool") return spec.type === "maxpool2d" ? "step.maxpool" : "step.avgpool";
  if (step.kind === "pool_back") {
    return spec.type === "maxpool2d" ? "step.maxpool_back" : "step.avgpool_back";
  }
  if (step.kind === "activation_back" && step.softmax) {
    return step.softmax === "ce" ? "step.activation_backSoftCE" : "step.activation_backSoftmax";
  }
  return "step." + step.kind;
}
