"""The naive loop oracle.

The oracle the tests compare the fast engine against; never used by the app.

Every op is written straight from its definition, CS231n style: explicit Python loops over every
output element (and, in the backward passes, over every element of dz), no im2col, no strided
views, no shared helpers with `cnncore.functional`. It is slow on purpose: it is the reference
the vectorized engine must agree with to the last few ulps.

Layout is PyTorch's, as in the engine: x (N, C, H, W), conv w (C_out, C_in, kH, kW), dense
w (units, in_features). `stride`, `padding` and `kernel` are (h, w) pairs or ints.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import activations, losses
from .spec import normalize_spec


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, int | np.integer):
        return int(v), int(v)
    return int(v[0]), int(v[1])


def _pad(x: np.ndarray, ph: int, pw: int, value: float) -> np.ndarray:
    """A new (N, C, H + 2ph, W + 2pw) array filled with `value`, with x copied in the middle."""
    n, c, h, w = x.shape
    out = np.full((n, c, h + 2 * ph, w + 2 * pw), value, dtype=x.dtype)
    out[:, :, ph : ph + h, pw : pw + w] = x
    return out


def _crop(x_pad: np.ndarray, ph: int, pw: int) -> np.ndarray:
    h, w = x_pad.shape[2] - 2 * ph, x_pad.shape[3] - 2 * pw
    return x_pad[:, :, ph : ph + h, pw : pw + w].copy()


def _out(size: int, k: int, s: int, p: int) -> int:
    return (size + 2 * p - k) // s + 1


# --------------------------------------------------------------------------- convolution


def conv2d_forward(x, w, b, stride, padding) -> np.ndarray:
    """z[n,f,i,j] = b[f] + sum_{c,u,v} x_pad[n,c,i*s+u,j*s+v] * w[f,c,u,v]."""
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    n_, c_in, h, wd = x.shape
    c_out, _, kh, kw = w.shape
    x_pad = _pad(x, ph, pw, 0.0)
    h_out, w_out = _out(h, kh, sh, ph), _out(wd, kw, sw, pw)
    z = np.zeros((n_, c_out, h_out, w_out), dtype=np.result_type(x, w))
    for n in range(n_):
        for f in range(c_out):
            for i in range(h_out):
                for j in range(w_out):
                    window = x_pad[n, :, i * sh : i * sh + kh, j * sw : j * sw + kw]
                    z[n, f, i, j] = np.sum(window * w[f]) + b[f]
    return z


def conv2d_backward(dz, x, w, stride, padding):
    """The textbook formulas -> (dx, dw, db).

    db[f]        = sum_{n,i,j} dz[n,f,i,j]
    dw[f,c,u,v]  = sum_{n,i,j} x_pad[n,c,i*s+u,j*s+v] * dz[n,f,i,j]
    dx           = scatter w[f] * dz[n,f,i,j] back onto the window of x_pad it came from, then
                   crop the padding off (cells no window covers keep exactly 0).
    """
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    n_, c_in, h, wd = x.shape
    c_out, _, kh, kw = w.shape
    _, _, h_out, w_out = dz.shape
    x_pad = _pad(x, ph, pw, 0.0)

    db = np.zeros(c_out, dtype=dz.dtype)
    for f in range(c_out):
        total = 0.0
        for n in range(n_):
            for i in range(h_out):
                for j in range(w_out):
                    total += dz[n, f, i, j]
        db[f] = total

    dw = np.zeros_like(w, dtype=np.result_type(dz, x))
    for f in range(c_out):
        for c in range(c_in):
            for u in range(kh):
                for v in range(kw):
                    total = 0.0
                    for n in range(n_):
                        xs = x_pad[n, c, u : u + sh * h_out : sh, v : v + sw * w_out : sw]
                        total += np.sum(xs * dz[n, f])
                    dw[f, c, u, v] = total

    dx_pad = np.zeros_like(x_pad, dtype=np.result_type(dz, w))
    for n in range(n_):
        for f in range(c_out):
            for i in range(h_out):
                for j in range(w_out):
                    dx_pad[n, :, i * sh : i * sh + kh, j * sw : j * sw + kw] += (
                        w[f] * dz[n, f, i, j]
                    )
    return _crop(dx_pad, ph, pw), dw, db


# --------------------------------------------------------------------------- pooling


def _first_max(window: np.ndarray) -> tuple[int, int]:
    """(u, v) of the first maximum in row-major order: a later equal value does not win."""
    best, bu, bv = -np.inf, 0, 0
    first = True
    for u in range(window.shape[0]):
        for v in range(window.shape[1]):
            if first or window[u, v] > best:
                best, bu, bv, first = window[u, v], u, v, False
    return bu, bv


def maxpool2d_forward(x, kernel, stride, padding=0) -> tuple[np.ndarray, np.ndarray]:
    """out[n,c,i,j] = max of the window (padding is -inf) -> (out, argmax_rc).

    argmax_rc (N, C, H_out, W_out, 2) is the (row, col) in the unpadded input of the first max.
    """
    (kh, kw), (sh, sw), (ph, pw) = _pair(kernel), _pair(stride), _pair(padding)
    n_, c_, h, wd = x.shape
    x_pad = _pad(x, ph, pw, -np.inf)
    h_out, w_out = _out(h, kh, sh, ph), _out(wd, kw, sw, pw)
    out = np.zeros((n_, c_, h_out, w_out), dtype=x.dtype)
    arg = np.zeros((n_, c_, h_out, w_out, 2), dtype=np.int64)
    for n in range(n_):
        for c in range(c_):
            for i in range(h_out):
                for j in range(w_out):
                    window = x_pad[n, c, i * sh : i * sh + kh, j * sw : j * sw + kw]
                    u, v = _first_max(window)
                    out[n, c, i, j] = window[u, v]
                    arg[n, c, i, j] = (i * sh + u - ph, j * sw + v - pw)
    return out, arg


def maxpool2d_backward(dout, x, kernel, stride, padding=0) -> np.ndarray:
    """Each dout[n,c,i,j] goes to its window's first max; overlapping windows accumulate."""
    (kh, kw), (sh, sw), (ph, pw) = _pair(kernel), _pair(stride), _pair(padding)
    x_pad = _pad(x, ph, pw, -np.inf)
    dx_pad = np.zeros(x_pad.shape, dtype=dout.dtype)
    n_, c_, h_out, w_out = dout.shape
    for n in range(n_):
        for c in range(c_):
            for i in range(h_out):
                for j in range(w_out):
                    window = x_pad[n, c, i * sh : i * sh + kh, j * sw : j * sw + kw]
                    u, v = _first_max(window)
                    dx_pad[n, c, i * sh + u, j * sw + v] += dout[n, c, i, j]
    return _crop(dx_pad, ph, pw)


def avgpool2d_forward(x, kernel, stride, padding=0) -> np.ndarray:
    """out[n,c,i,j] = sum of the zero-padded window / (kH*kW) (padding counts)."""
    (kh, kw), (sh, sw), (ph, pw) = _pair(kernel), _pair(stride), _pair(padding)
    n_, c_, h, wd = x.shape
    x_pad = _pad(x, ph, pw, 0.0)
    h_out, w_out = _out(h, kh, sh, ph), _out(wd, kw, sw, pw)
    out = np.zeros((n_, c_, h_out, w_out), dtype=x.dtype)
    for n in range(n_):
        for c in range(c_):
            for i in range(h_out):
                for j in range(w_out):
                    total = 0.0
                    for u in range(kh):
                        for v in range(kw):
                            total += x_pad[n, c, i * sh + u, j * sw + v]
                    out[n, c, i, j] = total / (kh * kw)
    return out


def avgpool2d_backward(dout, x_shape, kernel, stride, padding=0) -> np.ndarray:
    """Every cell of a window receives dout / (kH*kW); overlapping windows accumulate."""
    (kh, kw), (sh, sw), (ph, pw) = _pair(kernel), _pair(stride), _pair(padding)
    n_, c_, h, wd = x_shape
    dx_pad = np.zeros((n_, c_, h + 2 * ph, wd + 2 * pw), dtype=dout.dtype)
    _, _, h_out, w_out = dout.shape
    for n in range(n_):
        for c in range(c_):
            for i in range(h_out):
                for j in range(w_out):
                    for u in range(kh):
                        for v in range(kw):
                            dx_pad[n, c, i * sh + u, j * sw + v] += dout[n, c, i, j] / (kh * kw)
    return _crop(dx_pad, ph, pw)


# --------------------------------------------------------------------------- dense


def dense_forward(x, w, b) -> np.ndarray:
    """z[n,k] = b[k] + sum_m w[k,m] * x[n,m]."""
    n_, m_ = x.shape
    k_ = w.shape[0]
    z = np.zeros((n_, k_), dtype=np.result_type(x, w))
    for n in range(n_):
        for k in range(k_):
            total = b[k]
            for m in range(m_):
                total += w[k, m] * x[n, m]
            z[n, k] = total
    return z


def dense_backward(dz, x, w):
    """-> (dx, dw, db): dx[n,m] = sum_k dz[n,k] w[k,m]; dw[k,m] = sum_n dz[n,k] x[n,m]."""
    n_, m_ = x.shape
    k_ = w.shape[0]
    dx = np.zeros((n_, m_), dtype=np.result_type(dz, w))
    dw = np.zeros((k_, m_), dtype=np.result_type(dz, x))
    db = np.zeros(k_, dtype=dz.dtype)
    for n in range(n_):
        for k in range(k_):
            g = dz[n, k]
            db[k] += g
            for m in range(m_):
                dx[n, m] += g * w[k, m]
                dw[k, m] += g * x[n, m]
    return dx, dw, db


# --------------------------------------------------------------------------- activations


def _activation_backward(name: str, da: np.ndarray, z: np.ndarray, a: np.ndarray) -> np.ndarray:
    """dC/dz of one sample. softmax: the full Jacobian J = diag(a) - a a^T, dz = J^T da."""
    if name == "softmax":
        flat_a, flat_da = a.reshape(-1), da.reshape(-1)
        jac = np.diag(flat_a) - np.outer(flat_a, flat_a)
        return (jac.T @ flat_da).reshape(a.shape)
    return da * activations.derivative(name, z, a)


# --------------------------------------------------------------------------- whole network


def _encode_target(norm: dict, target: Any) -> np.ndarray:
    out_shape = tuple(norm["output_shape"])
    t = np.asarray(target)
    if (
        norm["loss"] == "cross_entropy"
        and len(out_shape) == 1
        and t.ndim == 0
        and np.issubdtype(t.dtype, np.integer)
    ):
        y = np.zeros(out_shape)
        y[int(t)] = 1.0
        return y
    return t.astype(np.float64).reshape(out_shape)


def network_trace(spec: dict, params: list, x: np.ndarray, target: Any) -> dict:
    """Forward and backward of a whole network with the loops above, sample by sample.

    x is one sample (C, H, W) or a batch (N, C, H, W); `target` is one target (a class index or
    an array shaped like the output) or a list of them for a batch. The batch cost is the mean
    over samples, so each sample's gradient is divided by N and dC/dw, dC/db are summed.

    Returns {"loss", "output", "target", "layers": [per-layer dict]}, each layer dict with the
    engine trace's keys a_prev, z, a, dC_da, dC_dz, dC_dw, dC_db, dC_da_prev (+ argmax for
    max-pool). For a single sample the tensors have no batch axis, as in the engine's trace.
    """
    norm = normalize_spec(spec)
    x = np.asarray(x, dtype=np.float64)
    single = x.ndim == 3
    xs = x[None] if single else x
    targets = [target] if single else list(target)
    n_samples = xs.shape[0]
    layers = norm["layers"]

    per_sample: list[list[dict]] = []
    total_loss = 0.0
    outputs, ys = [], []
    for s in range(n_samples):
        a = xs[s : s + 1]  # keep a batch axis of 1 for the ops
        recs: list[dict] = []
        for spec_l, p in zip(layers, params, strict=True):
            t = spec_l["type"]
            rec: dict[str, Any] = {"a_prev": a}
            if t == "conv2d":
                z = conv2d_forward(a, p["w"], p["b"], spec_l["stride"], spec_l["padding"])
            elif t == "maxpool2d":
                z, rec["argmax"] = maxpool2d_forward(
                    a, spec_l["kernel_size"], spec_l["stride"], spec_l["padding"]
                )
            elif t == "avgpool2d":
                z = avgpool2d_forward(a, spec_l["kernel_size"], spec_l["stride"], spec_l["padding"])
            elif t == "flatten":
                z = a.reshape(1, -1).copy()
            else:
                z = dense_forward(a, p["w"], p["b"])
            act = spec_l.get("activation", "identity")
            a = activations.activate(act, z)
            rec.update(z=z, a=a)
            recs.append(rec)

        y = _encode_target(norm, targets[s])[None]
        last = recs[-1]
        total_loss += losses.loss_value(norm["loss"], last["a"], y, last["z"])
        dC_da = losses.loss_grad(norm["loss"], last["a"], y) / n_samples
        for li in reversed(range(len(layers))):
            spec_l, rec, p = layers[li], recs[li], params[li]
            act = spec_l.get("activation", "identity")
            rec["dC_da"] = dC_da
            if li == len(layers) - 1 and act == "softmax" and norm["loss"] == "cross_entropy":
                dC_dz = (rec["a"] - y) / n_samples  # the textbook simplification a - y
            else:
                dC_dz = _activation_backward(act, dC_da[0], rec["z"][0], rec["a"][0])[None]
            rec["dC_dz"] = dC_dz
            t = spec_l["type"]
            dw = db = None
            if t == "conv2d":
                dx, dw, db = conv2d_backward(
                    dC_dz, rec["a_prev"], p["w"], spec_l["stride"], spec_l["padding"]
                )
            elif t == "maxpool2d":
                dx = maxpool2d_backward(
                    dC_dz,
                    rec["a_prev"],
                    spec_l["kernel_size"],
                    spec_l["stride"],
                    spec_l["padding"],
                )
            elif t == "avgpool2d":
                dx = avgpool2d_backward(
                    dC_dz,
                    rec["a_prev"].shape,
                    spec_l["kernel_size"],
                    spec_l["stride"],
                    spec_l["padding"],
                )
            elif t == "flatten":
                dx = dC_dz.reshape(rec["a_prev"].shape).copy()
            else:
                dx, dw, db = dense_backward(dC_dz, rec["a_prev"], p["w"])
            rec.update(dC_dw=dw, dC_db=db, dC_da_prev=dx)
            dC_da = dx
        per_sample.append(recs)
        outputs.append(recs[-1]["a"][0])
        ys.append(y[0])

    keys = ("a_prev", "z", "a", "dC_da", "dC_dz", "dC_da_prev", "argmax")
    out_layers = []
    for li in range(len(layers)):
        d: dict[str, Any] = {"index": li, "type": layers[li]["type"]}
        for k in keys:
            if k not in per_sample[0][li]:
                continue
            stacked = np.concatenate([recs[li][k] for recs in per_sample])
            d[k] = stacked[0] if single else stacked
        for k in ("dC_dw", "dC_db"):
            vals = [recs[li][k] for recs in per_sample]
            d[k] = None if vals[0] is None else sum(vals[1:], vals[0].copy())
        out_layers.append(d)
    output, y_all = np.stack(outputs), np.stack(ys)
    return {
        "loss": total_loss / n_samples,
        "output": output[0] if single else output,
        "target": y_all[0] if single else y_all,
        "layers": out_layers,
    }
