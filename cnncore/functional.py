"""Pure forward/backward pairs for every operation, vectorized with NumPy.

Each op is `*_forward(...) -> (out, cache)` and `*_backward(dout, cache) -> grads`, as in
CS231n's layers.py, but the caches are dataclasses because the trace and the UI read them.
Layout is PyTorch's: activations are NCHW, conv weights are (out_channels, in_channels, kH, kW).

Shapes use H_out = floor((H + 2*padding - kH) / stride) + 1.

The loops that remain run over kernel offsets (kH*kW iterations, e.g. 25), never over pixels or
samples: each iteration is one strided slice-add over the whole batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

Pair = tuple[int, int]


def out_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """H_out = floor((H + 2p - k) / s) + 1."""
    return (size + 2 * padding - kernel) // stride + 1


def pad_nchw(x: np.ndarray, padding: Pair, value: float = 0.0) -> np.ndarray:
    """Pad the two spatial axes of an NCHW array. Padding 0 returns `x` itself (no x[p:-p] trap)."""
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def crop_nchw(x: np.ndarray, padding: Pair) -> np.ndarray:
    """Undo `pad_nchw`: explicit end indices so padding 0 keeps everything."""
    ph, pw = padding
    return x[:, :, ph : x.shape[2] - ph, pw : x.shape[3] - pw]


def windows(x_pad: np.ndarray, kernel: Pair, stride: Pair) -> np.ndarray:
    """Strided view of every window: (N, C, H, W) -> (N, C, H_out, W_out, kH, kW). No copy."""
    view = sliding_window_view(x_pad, kernel, axis=(2, 3))
    return view[:, :, :: stride[0], :: stride[1]]


def _scatter_windows(dwin: np.ndarray, padded_shape: tuple, stride: Pair) -> np.ndarray:
    """Adjoint of `windows`: add (N, C, H_out, W_out, kH, kW) back onto the padded input.

    Windows overlap when stride < kernel, so contributions add up; cells no window covers
    (when (H + 2p - k) is not divisible by s) keep a zero gradient.
    """
    n, c, h_out, w_out, kh, kw = dwin.shape
    sh, sw = stride
    dx = np.zeros(padded_shape, dtype=dwin.dtype)
    for i in range(kh):
        for j in range(kw):
            dx[:, :, i : i + sh * h_out : sh, j : j + sw * w_out : sw] += dwin[:, :, :, :, i, j]
    return dx


# --------------------------------------------------------------------------- convolution


@dataclass
class ConvCache:
    x_shape: tuple
    cols: np.ndarray  # (N*H_out*W_out, C*kH*kW): the im2col matrix
    w: np.ndarray
    stride: Pair
    padding: Pair
    out_hw: Pair


def conv2d_forward(
    x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: Pair, padding: Pair
) -> tuple[np.ndarray, ConvCache]:
    """Cross-correlation, as every framework computes "convolution".

    Shapes: x (N, C_in, H, W), w (C_out, C_in, kH, kW), b (C_out,) -> z (N, C_out, H_out, W_out).
    z[n, f, i, j] = b[f] + sum_{c,u,v} x_pad[n, c, i*s + u, j*s + v] * w[f, c, u, v].
    """
    n = x.shape[0]
    c_out, c_in, kh, kw = w.shape
    win = windows(pad_nchw(x, padding), (kh, kw), stride)  # (N, C, Ho, Wo, kH, kW)
    h_out, w_out = win.shape[2], win.shape[3]
    cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(n * h_out * w_out, c_in * kh * kw)
    z = cols @ w.reshape(c_out, -1).T + b  # one BLAS call
    z = z.reshape(n, h_out, w_out, c_out).transpose(0, 3, 1, 2)
    cache = ConvCache(x.shape, cols, w, stride, padding, (h_out, w_out))
    return np.ascontiguousarray(z), cache


def conv2d_backward(
    dz: np.ndarray, cache: ConvCache, need_dx: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients of `conv2d_forward`.

    Shapes: dz (N, C_out, H_out, W_out) -> dx (N, C_in, H, W), dw like w, db (C_out,).
    db = sum of dz over batch and positions; dw = x correlated with dz (dz dilated by the
    stride); dx = full convolution of the dilated dz with w, cropped by the padding.
    Here dw and dx come from the im2col matrix, which computes exactly those sums (the tests
    check them against the textbook formulas). `need_dx=False` skips dx (a network's first
    layer during training).
    """
    w = cache.w
    c_out, c_in, kh, kw = w.shape
    n = dz.shape[0]
    h_out, w_out = cache.out_hw
    db = dz.sum(axis=(0, 2, 3))
    dw = (dz.transpose(1, 0, 2, 3).reshape(c_out, -1) @ cache.cols).reshape(w.shape)
    if not need_dx:
        return None, dw, db
    # Columns' gradient laid out (kH, kW, C_in, N*H_out*W_out): each kernel offset is then one
    # contiguous slab, so the scatter below adds whole slabs.
    dz_t = dz.transpose(1, 0, 2, 3).reshape(c_out, -1)  # (C_out, N*Ho*Wo)
    w_t = w.transpose(2, 3, 1, 0).reshape(kh * kw * c_in, c_out)
    dcols = (w_t @ dz_t).reshape(kh, kw, c_in, n, h_out, w_out)
    ph, pw = cache.padding
    _, _, h, wd = cache.x_shape
    sh, sw = cache.stride
    dx_pad = np.zeros((c_in, n, h + 2 * ph, wd + 2 * pw), dtype=dz.dtype)
    for i in range(kh):
        for j in range(kw):
            dx_pad[:, :, i : i + sh * h_out : sh, j : j + sw * w_out : sw] += dcols[i, j]
    dx = crop_nchw(dx_pad, cache.padding).transpose(1, 0, 2, 3)
    return np.ascontiguousarray(dx), dw, db


# --------------------------------------------------------------------------- pooling


@dataclass
class MaxPoolCache:
    x_shape: tuple
    argmax: np.ndarray  # (N, C, H_out, W_out) flat index into the kH*kW window
    kernel: Pair
    stride: Pair
    padding: Pair


def maxpool2d_forward(
    x: np.ndarray, kernel: Pair, stride: Pair, padding: Pair = (0, 0)
) -> tuple[np.ndarray, MaxPoolCache]:
    """Max over each window; padding counts as -inf, as in PyTorch.

    Shapes: x (N, C, H, W) -> out (N, C, H_out, W_out). Ties go to the first maximum in
    row-major window order, which is what PyTorch does.
    """
    win = windows(pad_nchw(x, padding, -np.inf), kernel, stride)
    flat = win.reshape(*win.shape[:4], -1)
    argmax = flat.argmax(axis=-1)  # np.argmax returns the first occurrence on ties
    out = np.take_along_axis(flat, argmax[..., None], axis=-1)[..., 0]
    return out, MaxPoolCache(x.shape, argmax, kernel, stride, padding)


def maxpool2d_argmax_rc(cache: MaxPoolCache) -> np.ndarray:
    """The input (row, col) each output cell came from: (N, C, H_out, W_out, 2), unpadded coords."""
    kh, kw = cache.kernel
    sh, sw = cache.stride
    h_out, w_out = cache.argmax.shape[2:]
    rows = np.arange(h_out)[:, None] * sh + cache.argmax // kw - cache.padding[0]
    cols = np.arange(w_out)[None, :] * sw + cache.argmax % kw - cache.padding[1]
    return np.stack([rows, cols], axis=-1)


def maxpool2d_backward(dout: np.ndarray, cache: MaxPoolCache) -> np.ndarray:
    """Route each gradient to its window's argmax; overlapping windows add up.

    Shapes: dout (N, C, H_out, W_out) -> dx (N, C, H, W).
    """
    kh, kw = cache.kernel
    onehot = cache.argmax[..., None] == np.arange(kh * kw)  # (N, C, Ho, Wo, kH*kW)
    dwin = (onehot * dout[..., None]).reshape(*dout.shape, kh, kw)
    n, c, h, w = cache.x_shape
    ph, pw = cache.padding
    dx_pad = _scatter_windows(dwin, (n, c, h + 2 * ph, w + 2 * pw), cache.stride)
    return np.ascontiguousarray(crop_nchw(dx_pad, cache.padding))


@dataclass
class AvgPoolCache:
    x_shape: tuple
    kernel: Pair
    stride: Pair
    padding: Pair
    out_hw: Pair


def avgpool2d_forward(
    x: np.ndarray, kernel: Pair, stride: Pair, padding: Pair = (0, 0)
) -> tuple[np.ndarray, AvgPoolCache]:
    """Mean over each window; zero padding is counted (PyTorch's count_include_pad=True).

    Shapes: x (N, C, H, W) -> out (N, C, H_out, W_out).
    """
    win = windows(pad_nchw(x, padding), kernel, stride)
    out = win.mean(axis=(-2, -1))
    return out, AvgPoolCache(x.shape, kernel, stride, padding, out.shape[2:])


def avgpool2d_backward(dout: np.ndarray, cache: AvgPoolCache) -> np.ndarray:
    """Every cell of a window receives dout / (kH*kW); overlaps add up.

    Shapes: dout (N, C, H_out, W_out) -> dx (N, C, H, W).
    """
    kh, kw = cache.kernel
    share = dout / (kh * kw)
    dwin = np.broadcast_to(share[..., None, None], (*dout.shape, kh, kw))
    n, c, h, w = cache.x_shape
    ph, pw = cache.padding
    dx_pad = _scatter_windows(dwin, (n, c, h + 2 * ph, w + 2 * pw), cache.stride)
    return np.ascontiguousarray(crop_nchw(dx_pad, cache.padding))


# --------------------------------------------------------------------------- dense


def dense_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """z = x @ w.T + b. Shapes: x (N, in_features), w (units, in_features), b (units,) -> (N, units)."""
    return x @ w.T + b, x


def dense_backward(
    dz: np.ndarray, x: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shapes: dz (N, units) -> dx (N, in_features), dw (units, in_features), db (units,)."""
    return dz @ w, dz.T @ x, dz.sum(axis=0)
