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


# --------------------------------------------------------------------------- layer types
# One entry per registered layer type (cnncore.registry; a test checks that none is missing).
# Layers: forward(spec, p, a) -> (z, extras), backward(spec, p, rec, dz) -> (dx, dw, db).
# Blocks: forward(spec, p, a) -> record, backward(spec, p, rec, dC_da) -> dx.


def _conv_f(spec, p, a):
    return conv2d_forward(a, p["w"], p["b"], spec["stride"], spec["padding"]), {}


def _conv_b(spec, p, rec, dz):
    return conv2d_backward(dz, rec["a_prev"], p["w"], spec["stride"], spec["padding"])


def _max_f(spec, p, a):
    z, arg = maxpool2d_forward(a, spec["kernel_size"], spec["stride"], spec["padding"])
    return z, {"argmax": arg}


def _max_b(spec, p, rec, dz):
    args = spec["kernel_size"], spec["stride"], spec["padding"]
    return maxpool2d_backward(dz, rec["a_prev"], *args), None, None


def _avg_f(spec, p, a):
    return avgpool2d_forward(a, spec["kernel_size"], spec["stride"], spec["padding"]), {}


def _avg_b(spec, p, rec, dz):
    args = spec["kernel_size"], spec["stride"], spec["padding"]
    return avgpool2d_backward(dz, rec["a_prev"].shape, *args), None, None


def _flat_f(spec, p, a):
    return a.reshape(a.shape[0], -1).copy(), {}


def _flat_b(spec, p, rec, dz):
    return dz.reshape(rec["a_prev"].shape).copy(), None, None


def _dense_f(spec, p, a):
    return dense_forward(a, p["w"], p["b"]), {}


def _dense_b(spec, p, rec, dz):
    return dense_backward(dz, rec["a_prev"], p["w"])


def _sub(p: dict, prefix: str) -> dict:
    """An inner layer's parameters out of a block's flat dotted dict."""
    pre = prefix + "."
    return {k[len(pre) :]: v for k, v in p.items() if k.startswith(pre)}


def _add(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x + y element by element, written out."""
    out = np.zeros_like(x)
    flat_x, flat_y, flat_o = x.reshape(-1), y.reshape(-1), out.reshape(-1)
    for k in range(flat_o.size):
        flat_o[k] = flat_x[k] + flat_y[k]
    return out


def _residual_f(spec, p, a):
    """a = g(F(x) + skip(x)), skip(x) = x or the projection conv."""
    f, inner = _chain_forward(spec["layers"], p, "layers", a)
    proj = None
    skip = a
    if spec["projection"] is not None:
        proj = _layer_forward(spec["projection"], _sub(p, "projection"), a)
        skip = proj["a"]
    z = _add(f, skip)
    out = activations.activate(spec["activation"], z)
    return {
        "a_prev": a,
        "f": f,
        "skip": skip,
        "z": z,
        "a": out,
        "layers": inner,
        "projection": proj,
    }


def _residual_b(spec, p, rec, dC_da):
    """The add sends dC/dz to F and to the skip; their gradients at x add up."""
    rec["dC_da"] = dC_da
    dz = _activation_backward(spec["activation"], dC_da[0], rec["z"][0], rec["a"][0])[None]
    rec["dC_dz"] = dz
    path = _chain_backward(spec["layers"], p, "layers", rec["layers"], dz)
    if spec["projection"] is not None:
        skip = _layer_backward(spec["projection"], _sub(p, "projection"), rec["projection"], dz)
    else:
        skip = dz
    rec.update(dC_da_prev_path=path, dC_da_prev_skip=skip, dC_da_prev=_add(path, skip))
    rec.update(dC_dw=None, dC_db=None)
    return rec["dC_da_prev"]


def _concat_f(spec, p, a):
    outs, branches = [], []
    for b, chain in enumerate(spec["branches"]):
        out, recs = _chain_forward(chain, p, f"branches.{b}", a)
        outs.append(out)
        branches.append(recs)
    n, c_total = a.shape[0], sum(o.shape[1] for o in outs)
    z = np.zeros((n, c_total, *outs[0].shape[2:]), dtype=a.dtype)
    c = 0
    for o in outs:  # channel by channel
        for k in range(o.shape[1]):
            z[:, c] = o[:, k]
            c += 1
    return {"a_prev": a, "z": z, "a": z, "branches": branches}


def _concat_b(spec, p, rec, dC_da):
    rec["dC_da"] = rec["dC_dz"] = dC_da
    total = np.zeros_like(rec["a_prev"])
    slices, dxs = [], []
    c = 0
    for b, chain in enumerate(spec["branches"]):
        width = chain[-1]["output_shape"][0]
        g = np.zeros((dC_da.shape[0], width, *dC_da.shape[2:]), dtype=dC_da.dtype)
        for k in range(width):
            g[:, k] = dC_da[:, c + k]
        c += width
        dx = _chain_backward(chain, p, f"branches.{b}", rec["branches"][b], g)
        total = _add(total, dx)
        slices.append(g)
        dxs.append(dx)
    rec.update(split_dC_da=slices, split_dC_da_prev=dxs, dC_da_prev=total, dC_dw=None, dC_db=None)
    return total


OPS = {
    "conv2d": (_conv_f, _conv_b),
    "maxpool2d": (_max_f, _max_b),
    "avgpool2d": (_avg_f, _avg_b),
    "flatten": (_flat_f, _flat_b),
    "dense": (_dense_f, _dense_b),
    "residual": (_residual_f, _residual_b),
    "concat": (_concat_f, _concat_b),
}
BLOCKS = ("residual", "concat")


def _layer_forward(spec: dict, p: dict, a: np.ndarray) -> dict:
    fwd, _ = OPS[spec["type"]]
    if spec["type"] in BLOCKS:
        return fwd(spec, p, a)
    z, extras = fwd(spec, p, a)
    return {
        "a_prev": a,
        "z": z,
        "a": activations.activate(spec.get("activation", "identity"), z),
        **extras,
    }


def _layer_backward(spec: dict, p: dict, rec: dict, dC_da: np.ndarray, dC_dz=None) -> np.ndarray:
    _, bwd = OPS[spec["type"]]
    if spec["type"] in BLOCKS:
        return bwd(spec, p, rec, dC_da)
    rec["dC_da"] = dC_da
    if dC_dz is None:
        act = spec.get("activation", "identity")
        dC_dz = _activation_backward(act, dC_da[0], rec["z"][0], rec["a"][0])[None]
    rec["dC_dz"] = dC_dz
    dx, dw, db = bwd(spec, p, rec, dC_dz)
    rec.update(dC_dw=dw, dC_db=db, dC_da_prev=dx)
    return dx


def _chain_forward(specs, p, prefix, a):
    recs = []
    for i, spec in enumerate(specs):
        rec = _layer_forward(spec, _sub(p, f"{prefix}.{i}"), a)
        recs.append(rec)
        a = rec["a"]
    return a, recs


def _chain_backward(specs, p, prefix, recs, g):
    for i in reversed(range(len(specs))):
        g = _layer_backward(specs[i], _sub(p, f"{prefix}.{i}"), recs[i], g)
    return g


# --------------------------------------------------------------------------- whole network

_TENSORS = (
    "a_prev", "f", "skip", "z", "a", "dC_da", "dC_dz",
    "dC_da_prev_path", "dC_da_prev_skip", "dC_da_prev", "argmax",
)  # fmt: skip


def _merge(per_sample: list[dict], single: bool) -> dict:
    """One layer's records of every sample: tensors stacked, parameter gradients summed."""
    first = per_sample[0]
    d: dict[str, Any] = {}
    for k in _TENSORS:
        if k in first:
            stacked = np.concatenate([r[k] for r in per_sample])
            d[k] = stacked[0] if single else stacked
    for k in ("dC_dw", "dC_db"):
        vals = [r[k] for r in per_sample]
        d[k] = None if vals[0] is None else sum(vals[1:], vals[0].copy())
    for k in ("split_dC_da", "split_dC_da_prev"):
        if k in first:
            d[k] = [
                np.concatenate([r[k][b] for r in per_sample])[0 if single else slice(None)]
                for b in range(len(first[k]))
            ]
    if "layers" in first:
        d["layers"] = [
            _merge([r["layers"][i] for r in per_sample], single)
            for i in range(len(first["layers"]))
        ]
        d["projection"] = (
            None
            if first["projection"] is None
            else _merge([r["projection"] for r in per_sample], single)
        )
    if "branches" in first:
        d["branches"] = [
            [_merge([r["branches"][b][i] for r in per_sample], single) for i in range(len(chain))]
            for b, chain in enumerate(first["branches"])
        ]
    return d


def network_trace(spec: dict, params: list, x: np.ndarray, target: Any) -> dict:
    """Forward and backward of a whole network with the loops above, sample by sample.

    x is one sample (C, H, W) or a batch (N, C, H, W); `target` is one target (a class index or
    an array shaped like the output) or a list of them for a batch. The batch cost is the mean
    over samples, so each sample's gradient is divided by N and dC/dw, dC/db are summed.

    Returns {"loss", "output", "target", "layers": [per-layer dict]}, each layer dict with the
    engine trace's keys a_prev, z, a, dC_da, dC_dz, dC_dw, dC_db, dC_da_prev (+ argmax for
    max-pool). Blocks add their parts: residual f, skip, dC_da_prev_path, dC_da_prev_skip and
    nested "layers" and "projection"; concat split_dC_da, split_dC_da_prev (per branch) and
    nested "branches". Block parameters are the flat dotted dicts of `cnncore.blocks`.
    For a single sample the tensors have no batch axis, as in the engine's trace.
    """
    from .blocks import flatten_params

    norm = normalize_spec(spec)
    params = [flatten_params(p or {}) for p in params]
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
            rec = _layer_forward(spec_l, p, a)
            recs.append(rec)
            a = rec["a"]

        y = _encode_target(norm, targets[s])[None]
        last = recs[-1]
        total_loss += losses.loss_value(norm["loss"], last["a"], y, last["z"])
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            dC_da = losses.loss_grad(norm["loss"], last["a"], y) / n_samples
        for li in reversed(range(len(layers))):
            spec_l, rec, p = layers[li], recs[li], params[li]
            act = spec_l.get("activation", "identity")
            dC_dz = None
            if li == len(layers) - 1 and act == "softmax" and norm["loss"] == "cross_entropy":
                dC_dz = (rec["a"] - y) / n_samples  # the textbook simplification a - y
            dC_da = _layer_backward(spec_l, p, rec, dC_da, dC_dz)
        per_sample.append(recs)
        outputs.append(recs[-1]["a"][0])
        ys.append(y[0])

    out_layers = []
    for li in range(len(layers)):
        d: dict[str, Any] = {"index": li, "type": layers[li]["type"]}
        d.update(_merge([recs[li] for recs in per_sample], single))
        out_layers.append(d)
    output, y_all = np.stack(outputs), np.stack(ys)
    return {
        "loss": total_loss / n_samples,
        "output": output[0] if single else output,
        "target": y_all[0] if single else y_all,
        "layers": out_layers,
    }
