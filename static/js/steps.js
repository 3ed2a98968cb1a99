// The ordered steps of one trace: forward per layer, the loss, then backward per layer in reverse.
// Derived only from the layer types and activations the API returns.

function hasActivation(layer) {
  return layer.activation && layer.activation !== "identity";
}

/**
 * @param trace the /api/trace response
 * @returns [{kind, phase, layer, column, grad}] where `column` is the overview column in focus
 *          (0 = the input, i + 1 = the output of layer i) and `grad` says the overview shows dC/da.
 */
export function buildSteps(trace) {
  const specs = trace.network.layers;
  const steps = [];
  const add = (phase, kind, layer, column, grad) => steps.push({ phase, kind, layer, column, grad });
  const last = specs.length - 1;
  specs.forEach((spec, i) => {
    const col = i + 1;
    if (spec.type === "conv2d") add("forward", "conv", i, col, false);
    else if (spec.type === "dense") add("forward", "dense", i, col, false);
    else if (spec.type === "flatten") add("forward", "flatten", i, col, false);
    else add("forward", "pool", i, col, false);
    if (hasActivation(spec)) add("forward", "activation", i, col, false);
  });
  add("loss", "loss", specs.length - 1, specs.length, true);
  for (let i = specs.length - 1; i >= 0; i--) {
    const spec = specs[i];
    const col = i + 1;
    if (spec.type === "conv2d" || spec.type === "dense") {
      if (hasActivation(spec)) {
        add("backward", "activation_back", i, col, true);
        // softmax has a full Jacobian; with cross-entropy the two combine into a − y.
        if (spec.activation === "softmax") steps[steps.length - 1].softmax = i === last && trace.network.loss === "cross_entropy" ? "ce" : "jacobian";
      }
      add("backward", "bias_grad", i, col, true);
      add("backward", "weight_grad", i, col, true);
      if (trace.layers[i].backward.dC_da_prev) add("backward", "input_grad", i, i, true);
    } else if (spec.type === "flatten") {
      add("backward", "flatten_back", i, i, true);
    } else {
      add("backward", "pool_back", i, i, true);
    }
  }
  return steps;
}

/** The i18n key of a step's title. */
export function stepTitleKey(step, spec) {
  if (step.kind === "pool") return spec.type === "maxpool2d" ? "step.maxpool" : "step.avgpool";
  if (step.kind === "pool_back") {
    return spec.type === "maxpool2d" ? "step.maxpool_back" : "step.avgpool_back";
  }
  if (step.kind === "activation_back" && step.softmax) {
    return step.softmax === "ce" ? "step.activation_backSoftCE" : "step.activation_backSoftmax";
  }
  return "step." + step.kind;
}
