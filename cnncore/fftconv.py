"""Convolution by FFT for the float32 training path (`cnnviz train --conv-algorithm fft/auto`).

    z, cache = conv2d_forward(x, w, b, padding)       # x (N, C_in, H, W) -> z (N, C_out, Ho, Wo)
    dx, dw, db = conv2d_backward(dz, cache)           # the gradients of z w.r.t. x, w and b

Same maths as `functional.conv2d_forward` (cross-correlation, PyTorch's conv2d with stride 1),
another order of the float sums: the results agree with it to rounding (float64 ~1e-13,
float32 ~1e-6 relative), not bit for bit. That is why the trace (float64, what the app shows)
never uses this module and why `--conv-algorithm im2col` keeps the bundled model's bits.

How. Along each spatial axis the input sits at the start of a buffer of length L and the kernel
is stored by its lag d = u - padding at slot d mod L. With L >= max(H + padding, H_out,
kernel_size) every wrapped index of the circular correlation lands on a zero cell, so the
circular correlation of the buffers equals the zero-padded linear one on every output cell
(the digit network's second conv, 14x14, k5, p2: L = 16 instead of 18). In the frequency
domain the sum over input channels is one complex matrix product per frequency:

    forward  Z_f = X_f @ conj(K_f)          (F, N, C_in) @ (F, C_in, C_out)
    dx       DX_f = DZ_f @ K_f^T            (F, N, C_out) @ (F, C_out, C_in)
    dw       DK_f = X_f^T @ conj(DZ_f)      (F, C_in, N) @ (F, N, C_out)

with F = L_h * (L_w // 2 + 1) frequencies from `scipy.fft.rfft2`. The spectra are computed in
a spatial-first layout (L_h, L_w, N, C) so that each frequency's (N, C) matrix is contiguous:
no transposes around the products. The forward pass keeps X_f and K_f for the backward pass.

`conv2d_relu_maxpool_forward` is the training fusion of a conv layer with relu followed by a
non-overlapping max-pool (the digit network's conv -> pool pairs): it pools the convolution's
spatial-first output before the bias (max(z + b) = max(z) + b, the bias is the same across a
window, and float addition is monotone) and the relu (relu(max z) = max relu z), so the bias,
relu and the NCHW transpose touch only the 4x smaller pooled output, and its backward pass
scatters the gradient straight into the zero-padded buffer the FFT reads.

`im2col_relu_maxpool_forward` is the same fusion for a network's first layer (few input
channels, where the FFT loses): im2col with the columns in pool-window order, so the pool is a
maximum over contiguous slabs and the weight gradient reads the pool's backward output as it is.

With two training threads (`functional.training_threads`, the digit networks)
`train.training_step` gives each thread half of the batch for a whole step; where a step is not
split so (batch norm, dropout), each half of the batch runs this module's pipeline (copy,
transforms, products, pooling) in its own thread, the second half in the helper, and the
weight gradient adds the two halves' spectra; the first layer's im2col weight gradient is then
split too (`SplitDwCache`). (scipy.fft's own
`workers=2` was measured slower: 0.72 vs 0.57 ms for the input's rfft2 at one worker.)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from . import functional as F  # noqa: N812

# scipy.fft is imported where it is used, so that importing cnncore (the app, the trace) does not
# load it (15 ms) until a training step convolves by FFT.

Pair = tuple[int, int]


def fft_length(size: int, kernel: int, padding: int) -> int:
    """The circular length L along one axis: >= size + padding (no wrapped input cell is read
    as a real one), >= the output size and >= the kernel size (distinct lags), rounded up to a
    length pocketfft transforms fast."""
    import scipy.fft as sfft

    out = size + 2 * padding - kernel + 1
    return sfft.next_fast_len(max(size + padding, out, kernel), real=True)


def supported(x_shape: tuple, w_shape: tuple, stride: Pair, padding: Pair) -> bool:
    """Stride 1 and at least one output cell: what this module computes."""
    kh, kw = w_shape[2:]
    ph, pw = padding
    return (
        tuple(stride) == (1, 1)
        and x_shape[2] + 2 * ph >= kh
        and x_shape[3] + 2 * pw >= kw
        and min(ph, pw) >= 0
    )


# Where `auto` uses the FFT. Measured at one thread, batch 64, float32, forward + backward of
# the layer alone (this machine, 2 cores, November 2026, a busy machine: ranges of runs):
#   digit network conv2, C_in 16 -> 32, 14x14, k5 p2:  im2col 15.5-21 ms, FFT 8.5-12.6 -> FFT
#   bundled 32/32 conv2, C_in 32 -> 32:                 im2col 31 ms,      FFT 12.4    -> FFT
#   first layers, C_in 1, 28x28, k5 p2 -> 16:          im2col 3.1 ms,     FFT 14.9    -> im2col
#   LeNet conv2, C_in 8 -> 16, 12x12, k5 p0:            im2col 2.0-2.8,    FFT 1.9-2.4 -> im2col
# LeNet's conv2 by FFT made a whole LeNet step only ~8 % faster at one thread (7.6 vs 8.2 ms)
# and at two threads LeNet has no helper thread (its products use OpenBLAS's two threads),
# where the FFT would run on one: LeNet stays on im2col (and bit-identical to 71fdbcd).
# The FFT's cost grows with N * (C_in + C_out) * L^2 log L (transforms) plus
# F * N * C_in * C_out (products), im2col's with N * Ho * Wo * kH * kW * C_in * C_out: the FFT
# wins with large kernels and many channels on both sides.
AUTO_MIN_IN_CHANNELS = 16
AUTO_MIN_KERNEL_CELLS = 25


def wins(x_shape: tuple, w_shape: tuple, stride: Pair, padding: Pair) -> bool:
    """`auto`'s choice: the FFT for geometries where it was measured faster (see above)."""
    c_out, c_in, kh, kw = w_shape
    return (
        supported(x_shape, w_shape, stride, padding)
        and c_in >= AUTO_MIN_IN_CHANNELS
        and kh * kw >= AUTO_MIN_KERNEL_CELLS
    )


# The training option `conv_algorithm` (`cnnviz train --conv-algorithm`).
CONV_ALGORITHMS = ("auto", "im2col", "fft")


def check_algorithm(name: str) -> str:
    """`name` if it is one of `CONV_ALGORITHMS`, else a ValueError naming the choices."""
    if name not in CONV_ALGORITHMS:
        raise ValueError(
            f"conv_algorithm must be one of {', '.join(CONV_ALGORITHMS)}, not {name!r}"
        )
    return name


def use_fft(algorithm: str, layer, x_shape: tuple) -> bool:
    """Whether a training step convolves `layer` (a plain conv2d layer; anything else: False)
    on an input of `x_shape` by FFT under `algorithm`."""
    if algorithm == "im2col":
        return False
    from .layers import Conv2d

    if type(layer) is not Conv2d:
        return False
    geometry = (x_shape, layer.params["w"].shape, layer.stride, layer.padding)
    return supported(*geometry) if algorithm == "fft" else wins(*geometry)


def training_op_forward(layer, x: np.ndarray, algorithm: str):
    """`layer.op_forward(x)` of a conv2d layer in a training step under `algorithm` (not
    "im2col"): by FFT where `use_fft` says so (an FFTConvCache), else im2col's forward, whose
    cache is wrapped in a `SplitDwCache` when the training helper thread can share its weight
    gradient. `Conv2d.op_backward` recognises both."""
    if use_fft(algorithm, layer, x.shape):
        return conv2d_forward(x, layer.params["w"], layer.params["b"], layer.padding)
    z, cache = layer.op_forward(x)
    if isinstance(cache, F.ConvCache) and cache.layout == "offsets" and F._can_share():
        return z, SplitDwCache(cache)
    return z, cache


@dataclass
class SplitDwCache:
    """An im2col convolution's cache (`functional.ConvCache`, its offset-major columns) whose
    weight gradient the two training threads share: each multiplies the columns of half of the
    batch by dz, and the halves are added. In `functional.conv2d_backward` that product is one
    single-threaded BLAS call (splitting it there would change im2col's bits; here, in the
    auto/fft training path, a different float order is allowed). Measured: the digit network's
    first conv (1 -> 16, 28x28) at batch 64 spends ~1.5 ms in it."""

    conv: F.ConvCache


def _split_dw_backward(dz: np.ndarray, cache: SplitDwCache, need_dx: bool):
    conv = cache.conv
    if need_dx:
        return F.conv2d_backward(dz, conv, need_dx)
    c_out, c_in, kh, kw = conv.w.shape
    n = dz.shape[0]
    dtype = np.result_type(dz, conv.w)
    dz_t = np.ascontiguousarray(dz.transpose(1, 0, 2, 3), dtype=dtype).reshape(c_out, -1)
    cols = conv.data.reshape(kh * kw * c_in, -1)  # columns ordered (n, i, j)
    parts: dict[int, np.ndarray] = {}

    def run(start: int, stop: int) -> None:
        parts[start] = cols[:, start:stop] @ dz_t[:, start:stop].T

    per_sample = dz_t.shape[1] // n
    F._halves(run, n, per_sample)
    dw_mat = parts.pop(0)
    for part in parts.values():
        dw_mat += part
    dw = dw_mat.T.reshape(c_out, kh, kw, c_in).transpose(0, 3, 1, 2)
    return None, np.ascontiguousarray(dw), dz_t.sum(axis=1)


@dataclass
class FFTConvCache:
    """What the backward pass needs: the input's and the kernels' spectra and the geometry."""

    x_shape: tuple  # (N, C_in, H, W)
    w_shape: tuple  # (C_out, C_in, kH, kW)
    padding: Pair
    lengths: Pair  # (L_h, L_w)
    chunks: list  # [(start, stop)] of samples: one chunk, or two with the training helper
    xf: list  # per chunk, (F, n, C_in) complex: rfft2 of the input buffers
    kf: np.ndarray  # (F, C_in, C_out) complex: the kernels' spectrum by lag (not conjugated)
    dtype: np.dtype
    # (dz, its zero-padded spatial-first buffer) from `relu_maxpool_backward`, taken by `backward`
    dz_buffer: tuple | None = None


def _chunks(n: int) -> list[Pair]:
    """The batch in one chunk, or in two halves when the training helper thread can take one."""
    if F._can_share() and n >= 2:
        return [(0, n // 2), (n // 2, n)]
    return [(0, n)]


def _each_chunk(run, chunks: list) -> None:
    """run(start, stop) for every chunk: the second of two in the training helper thread. Each
    chunk is the whole pipeline (copy, transforms, products, pooling) of its samples, so the two
    threads share no array they write and wait for each other once."""
    if len(chunks) == 2 and F._can_share():
        other = F._helper.submit(run, *chunks[1])
        try:
            run(*chunks[0])
        finally:
            other.result()
        return
    for start, stop in chunks:
        run(start, stop)


@lru_cache(maxsize=32)
def _lag_dft(lengths: Pair, kernel: Pair, padding: Pair, dtype: str) -> tuple:
    """The real DFT matrices between the kH*kW kernel lags and the F = L_h * (L_w // 2 + 1)
    frequencies of `rfft2`: (cos, sin) (F, kH*kW) with angle 2 pi (k1 d1 / L_h + k2 d2 / L_w)
    for lag d = (u - p_h, v - p_w), and the inverse's (cos, sin) (kH*kW, F) with irfft2's
    weights (1 / (L_h L_w), doubled for the columns whose mirror image rfft2 leaves out). A
    kernel's spectrum and the weight gradient's lags are then small real matrix products
    instead of transforms of mostly-zero L_h x L_w arrays."""
    (lh, lw), (kh, kw) = lengths, kernel
    k1 = np.arange(lh)[:, None]
    k2 = np.arange(lw // 2 + 1)[None, :]
    d1 = (np.arange(kh) - padding[0])[:, None]
    d2 = (np.arange(kw) - padding[1])[None, :]
    theta = (
        2
        * np.pi
        * (
            (k1[:, :, None, None] * d1[None, None] % lh) / lh
            + (k2[:, :, None, None] * d2[None, None] % lw) / lw
        )
    )  # (L_h, L_w//2+1, kH, kW)
    theta = theta.reshape(lh * (lw // 2 + 1), kh * kw)
    weight = np.full(lw // 2 + 1, 2.0)
    weight[0] = 1.0
    if lw % 2 == 0:
        weight[-1] = 1.0
    weight = np.broadcast_to(weight, (lh, lw // 2 + 1)).reshape(-1, 1) / (lh * lw)
    forward = (np.cos(theta).astype(dtype), np.sin(theta).astype(dtype))
    inverse = ((np.cos(theta) * weight).T.astype(dtype), (np.sin(theta) * weight).T.astype(dtype))
    return forward, inverse


def _kernel_spectrum(w: np.ndarray, padding: Pair, lengths: Pair, dtype) -> np.ndarray:
    """K_f (F, C_in, C_out) = sum over lags d of w_d e^{-i theta(f, d)}: the rfft2 of the
    kernels placed by lag u - padding (mod L)."""
    c_out, c_in, kh, kw = w.shape
    (cos, sin), _ = _lag_dft(lengths, (kh, kw), tuple(padding), np.dtype(dtype).str)
    w_mat = w.transpose(2, 3, 1, 0).reshape(kh * kw, c_in * c_out).astype(dtype, copy=False)
    kf = np.empty((cos.shape[0], c_in * c_out), dtype=_complex(dtype))
    kf.real = cos @ w_mat
    kf.imag = sin @ w_mat
    np.negative(kf.imag, out=kf.imag)
    return kf.reshape(-1, c_in, c_out)


def _weight_lags(dkf: np.ndarray, padding: Pair, lengths: Pair, kernel: Pair, dtype):
    """irfft2 of DK_f (F, C_in, C_out) read at the kernel's lags only -> dw (C_out, C_in, kH,
    kW): Re(DK e^{+i theta}) with irfft2's weights, two real products."""
    kh, kw = kernel
    _, (cos, sin) = _lag_dft(lengths, kernel, tuple(padding), np.dtype(dtype).str)
    c_in, c_out = dkf.shape[1:]
    flat = dkf.reshape(dkf.shape[0], c_in * c_out)
    dk = cos @ np.ascontiguousarray(flat.real) - sin @ np.ascontiguousarray(flat.imag)
    return np.ascontiguousarray(dk.reshape(kh, kw, c_in, c_out).transpose(3, 2, 0, 1))


def _complex(dtype) -> np.dtype:
    return np.result_type(dtype, np.complex64)


def _input_spectrum(x: np.ndarray, lengths: Pair, dtype) -> np.ndarray:
    """X_f (F, n, C_in) of an NCHW input (a chunk of the batch): placed at the start of a zero
    (L_h, L_w, n, C_in) buffer and transformed over the two leading axes."""
    import scipy.fft as sfft

    n, c_in, h, wd = x.shape
    buf = np.empty((*lengths, n, c_in), dtype=dtype)
    buf[:h, :wd] = x.transpose(2, 3, 0, 1)
    _zero_outside(buf, h, wd)
    return sfft.rfft2(buf, axes=(0, 1)).reshape(-1, n, c_in)


def _zero_outside(buf: np.ndarray, rows: int, cols: int) -> None:
    """Zero every cell of buf (L_h, L_w, ...) outside its first rows x cols (np.zeros would
    write the whole buffer first)."""
    buf[rows:] = 0
    buf[:rows, cols:] = 0


def _inverse(spec: np.ndarray, lengths: Pair, rows: int, cols: int, dtype) -> np.ndarray:
    """irfft2 over the two leading axes of (L_h, L_w // 2 + 1, ...), keeping the first rows x
    cols cells: the complex pass over the rows first, then the real pass over the rows kept."""
    import scipy.fft as sfft

    lh, lw = lengths
    part = sfft.ifft(spec, axis=0, overwrite_x=True)[:rows]
    out = sfft.irfft(part, n=lw, axis=1, overwrite_x=True)[:, :cols]
    return out.astype(dtype, copy=False)


def _forward_chunks(x, w, padding, rows: int, cols: int, each) -> FFTConvCache:
    """The convolution's first rows x cols cells, no bias, chunk by chunk: calls
    each(start, stop, y) with y (rows, cols, stop - start, C_out) spatial-first."""
    n, _, h, wd = x.shape
    c_out, _, kh, kw = w.shape
    dtype = np.result_type(x, w)
    lengths = (fft_length(h, kh, padding[0]), fft_length(wd, kw, padding[1]))
    kf = _kernel_spectrum(w, padding, lengths, dtype)
    kf_conj = np.conj(kf)
    chunks = _chunks(n)
    xfs: dict[int, np.ndarray] = {}

    def run(start: int, stop: int) -> None:
        xf = xfs[start] = _input_spectrum(x[start:stop], lengths, dtype)
        zf = np.matmul(xf, kf_conj)
        spec = zf.reshape(lengths[0], lengths[1] // 2 + 1, stop - start, c_out)
        each(start, stop, _inverse(spec, lengths, rows, cols, dtype))

    _each_chunk(run, chunks)
    xf = [xfs[start] for start, _ in chunks]
    return FFTConvCache(x.shape, w.shape, padding, lengths, chunks, xf, kf, dtype)


def conv2d_forward(
    x: np.ndarray, w: np.ndarray, b: np.ndarray, padding: Pair
) -> tuple[np.ndarray, FFTConvCache]:
    """Cross-correlation with stride 1 by FFT, as `functional.conv2d_forward`.

    Shapes: x (N, C_in, H, W), w (C_out, C_in, kH, kW), b (C_out,) -> z (N, C_out, Ho, Wo),
    Ho = H + 2*padding - kH + 1. z[n, f, i, j] = b[f] + sum_{c,u,v} x_pad[n, c, i+u, j+v] *
    w[f, c, u, v]. Any padding and kernel size; stride 1 only (`supported`).
    """
    padding = tuple(padding)
    if not supported(x.shape, w.shape, (1, 1), padding):
        raise ValueError("fftconv: stride 1 and at least one output cell only")
    n = x.shape[0]
    c_out, _, kh, kw = w.shape
    dtype = np.result_type(x, w)
    ho, wo = x.shape[2] + 2 * padding[0] - kh + 1, x.shape[3] + 2 * padding[1] - kw + 1
    z = np.empty((n, c_out, ho, wo), dtype=dtype)
    bias = b.astype(dtype, copy=False)[:, None, None]

    def each(start: int, stop: int, y: np.ndarray) -> None:
        np.add(y.transpose(2, 3, 0, 1), bias, out=z[start:stop])

    return z, _forward_chunks(x, w, padding, ho, wo, each)


def conv2d_backward(
    dz: np.ndarray, cache: FFTConvCache, need_dx: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients of `conv2d_forward` (or of the conv part of `conv2d_relu_maxpool_forward`).

    Shapes: dz (N, C_out, Ho, Wo), any strides -> dx (N, C_in, H, W) or None when `need_dx` is
    false, dw (C_out, C_in, kH, kW), db (C_out,). dx is the full convolution of dz with the
    kernels, dw the correlation of the input with dz, both from the forward pass's spectra and
    one transform of dz.
    """
    n = cache.x_shape[0]
    c_out = cache.w_shape[0]
    ho, wo = dz.shape[2:]
    buf = np.zeros((*cache.lengths, n, c_out), dtype=cache.dtype)
    buf[:ho, :wo] = dz.transpose(2, 3, 0, 1)
    return _backward_from_buffer(buf, (ho, wo), cache, need_dx)


def _backward_from_buffer(buf: np.ndarray, out_hw: Pair, cache: FFTConvCache, need_dx: bool):
    """The backward pass from dz already in its zero-padded spatial-first buffer (L_h, L_w, N,
    C_out) (zeros outside the first Ho x Wo cells), chunk by chunk as the forward pass."""
    import scipy.fft as sfft

    n, c_in, h, wd = cache.x_shape
    c_out, _, kh, kw = cache.w_shape
    lh, lw = cache.lengths
    dtype = cache.dtype
    db = buf[: out_hw[0], : out_hw[1]].sum(axis=(0, 1, 2), dtype=dtype)
    kf_t = cache.kf.transpose(0, 2, 1)
    dx = np.empty((h, wd, n, c_in), dtype=dtype) if need_dx else None
    parts: dict[int, np.ndarray] = {}

    def run(start: int, stop: int) -> None:
        df = sfft.rfft2(buf[:, :, start:stop], axes=(0, 1)).reshape(-1, stop - start, c_out)
        xf = cache.xf[cache.chunks.index((start, stop))]
        # dw: DK_f = X_f^T @ conj(DZ_f), this chunk's part of the sum over samples
        parts[start] = np.matmul(xf.transpose(0, 2, 1), np.conj(df))
        if need_dx:  # dx: DX_f = DZ_f @ K_f^T, the input's cells are the buffer's first H x W
            dxf = np.matmul(df, kf_t).reshape(lh, lw // 2 + 1, stop - start, c_in)
            dx[:, :, start:stop] = _inverse(dxf, cache.lengths, h, wd, dtype)

    _each_chunk(run, cache.chunks)
    dkf = parts[cache.chunks[0][0]]
    for start, _ in cache.chunks[1:]:
        dkf += parts[start]
    dw = _weight_lags(dkf, cache.padding, cache.lengths, (kh, kw), dtype)
    return (None if dx is None else dx.transpose(2, 3, 0, 1)), dw, db


# --------------------------------------------------------------------------- conv + relu + pool


@dataclass
class SpatialPoolCache:
    """The fused max-pool's record: each window's first maximum (row-major offset index) in the
    spatial-first layout (Ho', Wo', N, C), and the conv's cache to hand dz to."""

    kernel: Pair
    conv_hw: Pair  # the convolution's output (Ho, Wo)
    first: np.ndarray  # (Ho', Wo', N, C) int8
    conv: FFTConvCache


def fusable(pool_kernel: Pair, pool_stride: Pair, pool_padding: Pair) -> bool:
    """A pool `conv2d_relu_maxpool_forward` can fuse: non-overlapping windows without padding,
    stride = kernel size."""
    return tuple(pool_padding) == (0, 0) and tuple(pool_stride) == tuple(pool_kernel)


def conv2d_relu_maxpool_forward(
    x: np.ndarray, w: np.ndarray, b: np.ndarray, padding: Pair, pool_kernel: Pair
) -> tuple[np.ndarray, FFTConvCache, SpatialPoolCache]:
    """relu(maxpool(conv2d(x, w, b, padding))) by FFT, the pool non-overlapping (stride =
    kernel_size, no padding; PyTorch floors odd sizes).

    Shapes: x (N, C_in, H, W), w (C_out, C_in, kH, kW), b (C_out,) -> a (N, C_out, Ho // pH,
    Wo // pW), C-contiguous. The pool takes the maxima of the convolution without its bias,
    then adds the bias and applies relu to the pooled values (exact: the bias is the same over
    a window and float addition is monotone; relu is monotone). Ties: the first maximum in
    row-major window order wins, as in PyTorch. (A NaN is not tracked as PyTorch's pool does;
    a training step with NaN has no meaningful gradient anyway.)
    """
    padding, pool_kernel = tuple(padding), tuple(pool_kernel)
    n = x.shape[0]
    c_out, _, kh, kw = w.shape
    dtype = np.result_type(x, w)
    ho, wo = x.shape[2] + 2 * padding[0] - kh + 1, x.shape[3] + 2 * padding[1] - kw + 1
    pu, pv = pool_kernel
    po, qo = ho // pu, wo // pv
    if po < 1 or qo < 1:
        raise ValueError("fftconv: the pool window is larger than the convolution's output")
    out = np.empty((po, qo, n, c_out), dtype=dtype)
    first = np.zeros((po, qo, n, c_out), dtype=np.int8)
    bias = b.astype(dtype, copy=False)
    a = np.empty((n, c_out, po, qo), dtype=dtype)

    def each(start: int, stop: int, y: np.ndarray) -> None:  # y: rows the pool reads
        o, f = out[:, :, start:stop], first[:, :, start:stop]
        better = np.empty(o.shape, dtype=bool)
        k_better = np.empty(o.shape, dtype=np.int8)
        for u, v, k in F.offsets(pool_kernel):
            cand = y[u : po * pu : pu, v : qo * pv : pv]
            if k == 0:
                np.copyto(o, cand)
                continue
            np.greater(cand, o, out=better)
            np.multiply(better.view(np.int8), k, out=k_better, dtype=np.int8)
            np.maximum(f, k_better, out=f)
            np.maximum(o, cand, out=o)
        np.add(o, bias, out=o)
        np.maximum(o, 0, out=o)
        a[start:stop] = o.transpose(2, 3, 0, 1)

    conv = _forward_chunks(x, w, padding, po * pu, qo * pv, each)
    return a, conv, SpatialPoolCache(pool_kernel, (ho, wo), first, conv)


def relu_maxpool_backward(da: np.ndarray, a: np.ndarray, cache: SpatialPoolCache) -> np.ndarray:
    """dC/dz of the convolution from dC/da of `conv2d_relu_maxpool_forward`'s output a (or of
    `im2col_relu_maxpool_forward`'s: a `WindowPoolCache`).

    Shapes: da, a (N, C, Ho', Wo') -> dz (N, C, Ho, Wo), a view of the zero-padded
    spatial-first buffer the conv's backward pass transforms (`backward` takes the buffer
    itself: no copy). Each window's gradient goes to its first maximum when the pooled output
    is > 0 (relu), else nothing; cells no window covers get 0.
    """
    if isinstance(cache, WindowPoolCache):
        return _window_relu_maxpool_backward(da, a, cache)
    conv = cache.conv
    n, c = da.shape[:2]
    ho, wo = cache.conv_hw
    pu, pv = cache.kernel
    po, qo = cache.first.shape[:2]
    buf = np.empty((*conv.lengths, n, c), dtype=conv.dtype)

    def run(start: int, stop: int) -> None:
        _zero_outside(buf[:, :, start:stop], po * pu, qo * pv)  # the windows write the rest
        masked = np.ascontiguousarray(
            F.where_or_zero(a[start:stop] > 0, da[start:stop]).transpose(2, 3, 0, 1)
        )  # (Ho', Wo', n, C)
        first = cache.first[:, :, start:stop]
        hit = np.empty(first.shape, dtype=bool)
        for u, v, k in F.offsets(cache.kernel):
            np.equal(first, k, out=hit)
            view = buf[u : po * pu : pu, v : qo * pv : pv, start:stop]
            F.where_or_zero(hit, masked, out=view)

    _each_chunk(run, conv.chunks)
    dz = buf[:ho, :wo].transpose(2, 3, 0, 1)
    conv.dz_buffer = (dz, buf)
    return dz


def backward(
    dz: np.ndarray, cache: FFTConvCache | SplitDwCache, need_dx: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """The training backward pass of a conv layer whose cache `training_op_forward` or
    `conv2d_relu_maxpool_forward` made: `conv2d_backward`, taking the zero-padded buffer as it
    is when dz came from `relu_maxpool_backward`; a `SplitDwCache`'s weight gradient in two
    threads."""
    if isinstance(cache, SplitDwCache):
        return _split_dw_backward(dz, cache, need_dx)
    if isinstance(cache, WindowConvCache):
        return _window_backward(dz, cache, need_dx)
    entry, cache.dz_buffer = cache.dz_buffer, None
    if entry is not None and entry[0] is dz:
        return _backward_from_buffer(entry[1], dz.shape[2:], cache, need_dx)
    return conv2d_backward(dz, cache, need_dx)


# --------------------------------------------------------------------------- first conv + pool


@dataclass
class WindowConvCache:
    """The columns of `im2col_relu_maxpool_forward`, in pool-window order (kH, kW, C_in, pH, pW,
    N, Ho', Wo'), and the shapes; its backward pass gives no dx (a network's first layer)."""

    cols: np.ndarray
    w_shape: tuple


@dataclass
class WindowPoolCache:
    """Each pooled cell's first maximum (offset p*pW + q in its window), (C, Ho', Wo') per
    sample, laid out (C, N, Ho', Wo')."""

    first: np.ndarray
    window: int  # pH * pW


# `auto` uses `im2col_relu_maxpool_forward` for a first layer with at least this many output
# channels. Measured (bench_train.py, same runs, one thread / two): the digit network's first
# layer (1 -> 16, 28x28) in window order made the whole step 13.0 ms vs 15.6 (and 11.6 vs 13.4
# at two threads); LeNet's (1 -> 8, 24x24) gained nothing clear (4.6 vs 4.7 ms at one thread,
# 7.5 vs 5.8 ms medians but equal best blocks at two, where LeNet has no helper thread), so
# LeNet keeps im2col's bits.
AUTO_WINDOW_MIN_OUT_CHANNELS = 16


def window_fusable(layer, x_shape: tuple, pool_args: tuple) -> bool:
    """Whether `im2col_relu_maxpool_forward` takes this first conv layer and its pool under
    `auto`: stride 1, few input channels (im2col's offset-major case: kW * C_in < W_out),
    >= `AUTO_WINDOW_MIN_OUT_CHANNELS` output channels, a non-overlapping pool without padding
    (stride = kernel_size)."""
    kernel, stride, padding = pool_args
    w = layer.params["w"]
    out_w = x_shape[3] + 2 * layer.padding[1] - w.shape[3] + 1
    return (
        w.shape[0] >= AUTO_WINDOW_MIN_OUT_CHANNELS
        and tuple(layer.stride) == (1, 1)
        and w.shape[3] * w.shape[1] < out_w
        and fusable(kernel, stride, padding)
        and x_shape[2] + 2 * layer.padding[0] - w.shape[2] + 1 >= kernel[0]
        and out_w >= kernel[1]
    )


def im2col_relu_maxpool_forward(
    x: np.ndarray, w: np.ndarray, b: np.ndarray, padding: Pair, pool_kernel: Pair
) -> tuple[np.ndarray, WindowConvCache, WindowPoolCache]:
    """relu(maxpool(conv2d(x, w, b, padding))) for a network's first layer in training, by
    im2col with the columns in pool-window order, so that the pool is a maximum over whole
    contiguous slabs (one per window offset) instead of strided views, and its backward pass
    writes whole slabs that the weight gradient's product reads as they are.

    Shapes: x (N, C_in, H, W), w (C_out, C_in, kH, kW), b (C_out,) -> a (N, C_out, Ho // pH,
    Wo // pW), C-contiguous. Stride 1; the pool non-overlapping (stride = kernel_size, no
    padding; conv outputs no window covers are not computed: they reach no loss). Bias and relu
    after the pool (exact: see `conv2d_relu_maxpool_forward`); ties: the first maximum in
    row-major window order, as PyTorch.
    """
    from numpy.lib.stride_tricks import sliding_window_view

    n, c_in, h, wd = x.shape
    c_out, _, kh, kw = w.shape
    pu, pv = pool_kernel
    dtype = np.result_type(x, w)
    po = (h + 2 * padding[0] - kh + 1) // pu
    qo = (wd + 2 * padding[1] - kw + 1) // pv
    x_pad = F.pad_nchw(x, padding)
    windows = sliding_window_view(x_pad, (kh, kw), axis=(2, 3))[:, :, : po * pu, : qo * pv]
    windows = windows.reshape(n, c_in, po, pu, qo, pv, kh, kw).transpose(6, 7, 1, 3, 5, 0, 2, 4)
    cols = np.empty((kh, kw, c_in, pu, pv, n, po, qo), dtype=dtype)
    np.copyto(cols, windows)
    w_mat = w.transpose(0, 2, 3, 1).reshape(c_out, kh * kw * c_in).astype(dtype, copy=False)
    prod = (w_mat @ cols.reshape(kh * kw * c_in, -1)).reshape(c_out, pu * pv, n, po, qo)
    out = prod[:, 0].copy()
    first = np.zeros(out.shape, dtype=np.int8)
    better = np.empty(out.shape, dtype=bool)
    k_better = np.empty(out.shape, dtype=np.int8)
    for k in range(1, pu * pv):
        cand = prod[:, k]
        np.greater(cand, out, out=better)
        np.multiply(better.view(np.int8), k, out=k_better, dtype=np.int8)
        np.maximum(first, k_better, out=first)
        np.maximum(out, cand, out=out)
    np.add(out, b.astype(dtype, copy=False)[:, None, None, None], out=out)
    np.maximum(out, 0, out=out)
    a = np.ascontiguousarray(out.transpose(1, 0, 2, 3))
    return a, WindowConvCache(cols, w.shape), WindowPoolCache(first, pu * pv)


def _window_relu_maxpool_backward(da: np.ndarray, a: np.ndarray, cache: WindowPoolCache):
    """dC/dz of `im2col_relu_maxpool_forward`'s convolution, laid out like its columns' last
    axes: (C, pH*pW, N, Ho', Wo') (not NCHW: only `backward` reads it)."""
    masked = np.ascontiguousarray(F.where_or_zero(a > 0, da).transpose(1, 0, 2, 3))
    dz = np.empty((masked.shape[0], cache.window, *masked.shape[1:]), dtype=masked.dtype)
    hit = np.empty(masked.shape, dtype=bool)
    for k in range(cache.window):
        np.equal(cache.first, k, out=hit)
        F.where_or_zero(hit, masked, out=dz[:, k])
    return dz


def _window_backward(dz: np.ndarray, cache: WindowConvCache, need_dx: bool):
    if need_dx:
        raise ValueError("fftconv: the window-order first layer has no input gradient")
    c_out, c_in, kh, kw = cache.w_shape
    dz_mat = dz.reshape(c_out, -1)
    cols = cache.cols.reshape(kh * kw * c_in, -1)
    dw = (cols @ dz_mat.T).T.reshape(c_out, kh, kw, c_in).transpose(0, 3, 1, 2)
    return None, np.ascontiguousarray(dw), dz_mat.sum(axis=1)


TRAINING_CACHES = (FFTConvCache, SplitDwCache, WindowConvCache)
FUSED_POOL_CACHES = (SpatialPoolCache, WindowPoolCache)
