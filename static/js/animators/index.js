// Which animator draws which step. Parameter-gradient steps depend on the layer type.

import { activation } from "./activation.js";
import { concatJoin, concatSplit, concatSum } from "./concat.js";
import { convForward } from "./conv.js";
import { convBias, convWeight } from "./conv_backward.js";
import { convInputGrad } from "./conv_input_grad.js";
import { denseForward } from "./dense.js";
import { denseBackward } from "./dense_backward.js";
import { flatten } from "./flatten.js";
import { loss } from "./loss.js";
import { poolForward } from "./pool.js";
import { poolBackward } from "./pool_backward.js";
import { residualAdd, residualSplit, residualSum } from "./residual.js";

const byLayer = (conv, dense) => (ui, ctx) => (ctx.spec.type === "conv2d" ? conv : dense)(ui, ctx);

export const ANIMATORS = {
  conv: convForward,
  activation,
  activation_back: activation,
  pool: poolForward,
  flatten,
  flatten_back: flatten,
  dense: denseForward,
  loss,
  bias_grad: byLayer(convBias, denseBackward),
  weight_grad: byLayer(convWeight, denseBackward),
  input_grad: byLayer(convInputGrad, denseBackward),
  pool_back: poolBackward,
  // blocks (steps.js walks into them; their inner layers use the animators above)
  res_add: residualAdd,
  res_split: residualSplit,
  res_sum: residualSum,
  concat_join: concatJoin,
  concat_split: concatSplit,
  concat_sum: concatSum,
};
