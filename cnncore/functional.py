"""Pure forward/backward pairs for every operation, vectorized with NumPy.

Each op is `*_forward(...) -> (out, cache)` and `*_backward(dout, cache) -> grads`, as in
CS231n's layers.py, but the caches are dataclasses because the trace and the UI read them.
Layout is PyTorch's: activations are NCHW, conv weights are (out_channels, in_channels, kH, kW).

Shapes use H_out = floor((H + 2*padding - kH) / stride) + 1.

The loops that remain run over kernel offsets (kH*kW iterations, e.g. 25), never over pixels or
samples: each iteration is one strided slice (a view) copied or added over the whole batch.
Uncovered input cells (when (H + 2p - k) is not divisible by s) keep a zero gradient.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
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


def offset_slice(x_pad: np.ndarray, u: int, v: int, stride: Pair, out_hw: Pair) -> np.ndarray:
    """The input cells that kernel offset (u, v) meets at every output position.

    Shapes: x_pad (..., H_pad, W_pad) -> view (..., H_out, W_out), where
    view[..., i, j] = x_pad[..., i*s_h + u, j*s_w + v]. A strided view: no copy.
    """
    (sh, sw), (ho, wo) = stride, out_hw
    return x_pad[..., u : u + sh * ho : sh, v : v + sw * wo : sw]


def offsets(kernel: Pair):
    """Every kernel offset (u, v) in row-major order, with its flat index u*kW + v."""
    kh, kw = kernel
    for u in range(kh):
        for v in range(kw):
            yield u, v, u * kw + v


def where_or_zero(mask: np.ndarray, values: np.ndarray, out: np.ndarray | None = None):
    """np.where(mask, values, 0) for a float array, bit for bit (+0.0 where the mask is false;
    values, NaN and -0.0 kept where true), without np.where's branches: the boolean mask becomes
    an all-ones or all-zeros integer of the values' width and is ANDed with their bits. Several
    times faster on random masks (a max-pool's window choices). Writes into `out` if given (any
    strides, the values' dtype)."""
    dtype = values.dtype
    if dtype.kind != "f":
        result = np.where(mask, values, dtype.type(0))
        if out is None:
            return result
        out[...] = result
        return out
    uint = np.dtype(f"u{dtype.itemsize}")
    # 1 -> all ones, 0 -> 0 (unsigned wrap-around), widened and negated in one pass
    bits = np.negative(mask.view(np.uint8), dtype=uint)
    if out is None:
        np.bitwise_and(bits, values.view(uint), out=bits)
        return bits.view(dtype)
    np.bitwise_and(bits, values.view(uint), out=out.view(uint))
    return out


def output_hw(x_shape: tuple, kernel: Pair, stride: Pair, padding: Pair) -> Pair:
    return (
        out_size(x_shape[-2], kernel[0], stride[0], padding[0]),
        out_size(x_shape[-1], kernel[1], stride[1], padding[1]),
    )


# --------------------------------------------------------------------------- convolution


@dataclass
class ConvCache:
    x_shape: tuple
    # "blocks": `data` is the zero-padded input in channels-last order (N, H_pad, W_pad, C_in);
    #     the columns are rebuilt block by block when needed (see `_column_blocks`).
    # "offsets": `data` is the whole im2col matrix (kH, kW, C_in, N, H_out, W_out).
    layout: str
    data: np.ndarray
    w: np.ndarray
    stride: Pair
    padding: Pair
    out_hw: Pair


# The columns of a convolution are kH*kW times the size of its input (20 MB for the digit
# network's second layer at batch 64): written once and read twice from main memory, they cost
# more than the products themselves. Built and used a block of samples at a time, they stay in
# the CPU's cache. ~1 MiB per block fits a 2 MiB L2 with room for the operands.
BLOCK_BYTES = 1 << 20
DIRECT_DX_MIN_CHANNELS = 16


def _pad_channels_last(x: np.ndarray, padding: Pair, dtype) -> np.ndarray:
    """x (N, C, H, W) -> zero-padded (N, H + 2p, W + 2p, C), C-contiguous, in `dtype`."""
    n, c, h, w = x.shape
    ph, pw = padding
    if ph == 0 and pw == 0:
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1), dtype=dtype)
    x_pad = np.empty((n, h + 2 * ph, w + 2 * pw, c), dtype=dtype)
    x_pad[:, ph : ph + h, pw : pw + w, :] = x.transpose(0, 2, 3, 1)
    # zeros only in the border (np.zeros would write the whole array first)
    x_pad[:, :ph] = 0
    x_pad[:, ph + h :] = 0
    x_pad[:, ph : ph + h, :pw] = 0
    x_pad[:, ph : ph + h, pw + w :] = 0
    return x_pad


def _block_samples(x_pad: np.ndarray, kernel: Pair, out_hw: Pair) -> int:
    """Samples per block of columns: ~`BLOCK_BYTES` of them, decided by the whole batch."""
    per_sample = out_hw[0] * out_hw[1] * kernel[0] * kernel[1] * x_pad.shape[3] * x_pad.itemsize
    return int(min(x_pad.shape[0], max(1, BLOCK_BYTES // max(per_sample, 1))))


def _column_blocks(
    x_pad: np.ndarray,
    kernel: Pair,
    stride: Pair,
    out_hw: Pair,
    start: int = 0,
    stop: int | None = None,
):
    """im2col of a channels-last padded input, a block of samples at a time.

    Yields (first, last, cols) where cols ((last - first) * H_out * W_out, kH*kW*C_in) holds
    x_pad[n, i*s + u, j*s + v, c] at row (n, i, j), column (u, v, c), for n in [first, last).
    Each block is one copy from the strided sliding-window view (each window row is a
    contiguous run of kW*C_in values) into one reused buffer.

    The block size changes no sum of the forward product (each output value is one sum over
    a whole row of columns), but the weight gradient adds its blocks' partial products, so
    the block size is part of its float32 result: changing `BLOCK_BYTES` changes the bits of
    a trained model (benchmarks/check_bitexact.py; larger blocks, 2-64 MiB, were no faster).
    `start`/`stop` (a block boundary, the batch's end) give the blocks of those samples only,
    the same blocks as of the whole batch (two threads share a batch this way).
    """
    n, c_in = x_pad.shape[0], x_pad.shape[3]
    stop = n if stop is None else stop
    (kh, kw), (ho, wo) = kernel, out_hw
    # (N, H_out, W_out, kH, kW, C_in) view of every window, strided by the stride
    windows = sliding_window_view(x_pad, (kh, kw), axis=(1, 2))
    windows = windows[:, :: stride[0], :: stride[1]][:, :ho, :wo].transpose(0, 1, 2, 4, 5, 3)
    block = _block_samples(x_pad, kernel, out_hw)
    buf = np.empty((min(block, stop - start), ho, wo, kh, kw, c_in), dtype=x_pad.dtype)
    for first in range(start, stop, block):
        last = min(stop, first + block)
        cols = buf[: last - first]
        np.copyto(cols, windows[first:last])
        yield first, last, cols.reshape((last - first) * ho * wo, kh * kw * c_in)


def _use_blocks(c_in: int, kw: int, wo: int) -> bool:
    """Channels-last blocks when a window row (kW*C_in values) is at least an output row long;
    otherwise (few input channels, e.g. a first layer) the offset-major layout, whose copies run
    along output rows, is faster."""
    return kw * c_in >= wo


def _blocks_product(x_pad, w_mat, kernel, stride, out_hw, prod, parallel: bool) -> None:
    """prod (N, H_out, W_out, C_out) = columns @ w_mat, block by block; with the training
    helper thread (`training_threads`) the second half of the blocks runs in it, each thread
    with its own column buffer and one BLAS thread. Every output value is the same product
    either way (a row's sum does not depend on which block or thread computes it)."""
    c_out = w_mat.shape[1]

    def run(start: int, stop: int | None = None) -> None:
        for first, last, cols in _column_blocks(x_pad, kernel, stride, out_hw, start, stop):
            np.matmul(cols, w_mat, out=prod[first:last].reshape(-1, c_out))

    n, block = x_pad.shape[0], _block_samples(x_pad, kernel, out_hw)
    if not parallel or not _can_share() or n <= block:
        run(0)
        return
    mid = (-(-n // block) + 1) // 2 * block  # half of the blocks, rounded up
    other = _helper.submit(run, mid)
    try:
        run(0, mid)
    finally:
        other.result()


def conv2d_forward(
    x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: Pair, padding: Pair
) -> tuple[np.ndarray, ConvCache]:
    """Cross-correlation, as every framework computes "convolution".

    Shapes: x (N, C_in, H, W), w (C_out, C_in, kH, kW), b (C_out,) -> z (N, C_out, H_out, W_out).
    z[n, f, i, j] = b[f] + sum_{c,u,v} x_pad[n, c, i*s + u, j*s + v] * w[f, c, u, v].

    im2col and one BLAS product per block of samples. With several input channels the padded
    input is laid out channels-last (N, H_pad, W_pad, C_in), the columns (rows n, i, j; columns
    u, v, c) are copied from its sliding-window view a cache-sized block of samples at a time
    (`_column_blocks`) and multiplied by the weights reshaped (kH*kW*C_in, C_out). With few
    input channels the columns are one slab per kernel offset (kH, kW, C_in, N, H_out, W_out),
    one copy from the sliding-window view and one product. Either way the bias is added in the
    same pass that puts the result into NCHW order. Every value is the same sum as in the
    textbook formula; float32 inputs stay float32 throughout.
    """
    return _conv2d_forward(x, w, b, stride, padding, parallel=True)


def _conv2d_forward(x, w, b, stride: Pair, padding: Pair, parallel: bool):
    n = x.shape[0]
    c_out, c_in, kh, kw = w.shape
    ho, wo = out_hw = output_hw(x.shape, (kh, kw), stride, padding)
    dtype = np.result_type(x, w)
    z = np.empty((n, c_out, ho, wo), dtype=dtype)
    if _use_blocks(c_in, kw, wo):
        x_pad = _pad_channels_last(x, padding, dtype)
        w_mat = w.transpose(2, 3, 1, 0).reshape(kh * kw * c_in, c_out).astype(dtype, copy=False)
        prod = np.empty((n, ho, wo, c_out), dtype=dtype)
        _blocks_product(x_pad, w_mat, (kh, kw), stride, out_hw, prod, parallel)
        prod = prod.transpose(0, 3, 1, 2)
        _halves(lambda i, j: np.add(prod[i:j], b[:, None, None], out=z[i:j]), n)
        return z, ConvCache(x.shape, "blocks", x_pad, w, stride, padding, out_hw)
    x_pad = pad_nchw(x, padding).transpose(1, 0, 2, 3)  # (C_in, N, H_pad, W_pad) view
    windows = sliding_window_view(x_pad, (kh, kw), axis=(2, 3))
    windows = windows[:, :, :: stride[0], :: stride[1]][:, :, :ho, :wo]
    cols = np.empty((kh, kw, c_in, n, ho, wo), dtype=dtype)
    windows = windows.transpose(4, 5, 0, 1, 2, 3)
    _halves(lambda i, j: np.copyto(cols[:, :, :, i:j], windows[:, :, :, i:j]), n)
    w_mat = w.transpose(0, 2, 3, 1).reshape(c_out, kh * kw * c_in).astype(dtype, copy=False)
    cols_mat, prod = cols.reshape(kh * kw * c_in, -1), np.empty((c_out, n * ho * wo), dtype)
    _halves(lambda i, j: np.matmul(w_mat, cols_mat[:, i:j], out=prod[:, i:j]), n, ho * wo)
    prod = prod.reshape(c_out, n, ho, wo).transpose(1, 0, 2, 3)
    _halves(lambda i, j: np.add(prod[i:j], b[:, None, None], out=z[i:j]), n)
    return z, ConvCache(x.shape, "offsets", cols, w, stride, padding, out_hw)


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
    ho, wo = cache.out_hw
    dtype = np.result_type(dz, w)
    dz_t = np.ascontiguousarray(dz.transpose(1, 0, 2, 3), dtype=dtype).reshape(c_out, -1)
    db = dz_t.sum(axis=1)
    ph, pw = cache.padding
    direct_dx = (
        need_dx
        and cache.stride == (1, 1)
        and ph < kh
        and pw < kw
        and c_in >= DIRECT_DX_MIN_CHANNELS
    )
    if cache.layout == "blocks" and direct_dx and _can_share():
        # two threads: dx (a forward convolution, below) in the helper, dw here
        dx_job = _helper.submit(_direct_dx, dz, w, cache.padding, dtype)
        try:
            dw = _blocks_dw(dz_t, cache)
        finally:
            dx = dx_job.result()
        return dx, np.ascontiguousarray(dw), db
    if cache.layout == "blocks":
        dw = _blocks_dw(dz_t, cache)
    else:
        cols = cache.data.reshape(kh * kw * c_in, -1)
        # (cols @ dz_t.T).T, not dz_t @ cols.T: the same sums, twice as fast in OpenBLAS here.
        dw = (cols @ dz_t.T).T.reshape(c_out, kh, kw, c_in).transpose(0, 3, 1, 2)
    if not need_dx:
        return None, np.ascontiguousarray(dw), db
    if direct_dx:
        return _direct_dx(dz, w, cache.padding, dtype, parallel=True), np.ascontiguousarray(dw), db
    # Otherwise dx in channels-last order: for each kernel offset (u, v), one BLAS product
    # gives that offset's slab of the columns' gradient, dz @ w[:, :, u, v] (N*Ho*Wo, C_in),
    # which is added onto the input cells it met. The slab buffer is reused, so the columns'
    # gradient is never held whole (kH*kW times the memory) and every add reads a slab still in
    # cache.
    (sh, sw), (_, _, h, wd) = cache.stride, cache.x_shape
    dx_pad = np.zeros((n, h + 2 * ph, wd + 2 * pw, c_in), dtype=dtype)
    slab = np.empty((n, ho, wo, c_in), dtype=dtype)
    dz_m = dz_t.T  # (N*Ho*Wo, C_out), a transposed view: BLAS reads it as it is
    w_uv = np.ascontiguousarray(w.transpose(2, 3, 0, 1), dtype=dtype)  # (kH, kW, C_out, C_in)
    for u, v, _ in offsets((kh, kw)):
        np.matmul(dz_m, w_uv[u, v], out=slab.reshape(-1, c_in))
        view = dx_pad[:, u : u + sh * ho : sh, v : v + sw * wo : sw]
        np.add(view, slab, out=view)
    dx = dx_pad[:, ph : ph + h, pw : pw + wd].transpose(0, 3, 1, 2)
    return np.ascontiguousarray(dx), np.ascontiguousarray(dw), db


def _blocks_dw(dz_t: np.ndarray, cache: ConvCache) -> np.ndarray:
    """dw (C_out, C_in, kH, kW) view from the blocks' columns: the blocks' partial products
    (C_out, kH*kW*C_in), added in block order."""
    c_out, c_in, kh, kw = cache.w.shape
    rows = cache.out_hw[0] * cache.out_hw[1]
    dw_mat = None
    for first, last, cols in _column_blocks(cache.data, (kh, kw), cache.stride, cache.out_hw):
        part = dz_t[:, first * rows : last * rows] @ cols
        if dw_mat is None:
            dw_mat = part
        else:
            dw_mat += part
    return dw_mat.reshape(c_out, kh, kw, c_in).transpose(0, 3, 1, 2)


def _direct_dx(dz: np.ndarray, w: np.ndarray, padding: Pair, dtype, parallel: bool = False):
    """Stride 1, and enough input channels for its products to be efficient (measured with
    benchmarks/bench_train.py: faster from 16, slower at 8): dx is the full correlation of dz
    with the flipped kernels (in and out channels swapped), i.e. a forward convolution of dz
    padded by k - 1 - p, done by the same blocked im2col and BLAS products as the forward
    pass, with no columns' gradient to scatter back."""
    _, c_in, kh, kw = w.shape
    ph, pw = padding
    w_flip = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3), dtype=dtype)
    zero_bias = np.zeros(c_in, dtype=dtype)
    return _conv2d_forward(dz, w_flip, zero_bias, (1, 1), (kh - 1 - ph, kw - 1 - pw), parallel)[0]


# --------------------------------------------------------------------------- two threads

# Training with two BLAS threads: OpenBLAS splits these products over both cores poorly (they
# are narrow and, block by block, short) and its worker spin-waits between them, so inside
# `training_threads` BLAS runs with one thread and one helper thread takes whole pieces of
# work instead: half of the batch of the forward blocks, of the first convolution's product,
# of the max-pools and of the bias passes; the input gradient while the weight gradient is
# computed in the caller. Every product is the same one-thread BLAS call on the same operands
# as in a one-thread run, and the rest is element-wise, so the results are the one-thread
# results bit for bit. NumPy releases the GIL in these copies, passes and products. Off
# (None) unless a training loop turns it on.
_helper: ThreadPoolExecutor | None = None


# Below this many multiply-adds per sample (LeNet: 0.33 M) the helper's hand-offs cost more
# than they save and OpenBLAS's own threads do better (LeNet, 2 threads, same process: 5.9 ms
# per step with the helper, 5.0 with OpenBLAS's threads; the digit network 2.9 M: 22.5 vs 23.8).
TWO_THREADS_MIN_MULTIPLY_ADDS = 1_000_000


@contextmanager
def training_threads(threads: int | None = None, multiply_adds: int | None = None):
    """Within the block, float32 convolutions use two threads when `threads` (default: the BLAS
    library's thread count) is 2 or more, the machine has two cores or more, and the network
    (`multiply_adds` per sample, if given) is large enough to gain from it. Otherwise nothing
    changes (BLAS keeps its own threads)."""
    global _helper
    from threadpoolctl import ThreadpoolController

    libs = ThreadpoolController().select(user_api="blas").lib_controllers
    if threads is None:
        threads = max((lib.num_threads for lib in libs), default=1)
    small = multiply_adds is not None and multiply_adds < TWO_THREADS_MIN_MULTIPLY_ADDS
    if threads < 2 or (os.cpu_count() or 1) < 2 or _helper is not None or small:
        yield
        return
    counts = [lib.num_threads for lib in libs]
    for lib in libs:
        lib.set_num_threads(1)
    _helper = ThreadPoolExecutor(
        max_workers=1, thread_name_prefix="cnncore-conv", initializer=_mark_helper
    )
    try:
        yield
    finally:
        helper, _helper = _helper, None
        helper.shutdown(wait=True)
        for lib, count in zip(libs, counts, strict=True):
            lib.set_num_threads(count)


_in_helper = threading.local()  # .active: this thread is the helper (it never hands on work)


def _mark_helper() -> None:
    _in_helper.active = True


def _can_share() -> bool:
    return _helper is not None and not getattr(_in_helper, "active", False)


@contextmanager
def sharing_off():
    """Within the block this thread hands no work to the helper (while the helper runs a share
    of its own: `train.training_step`'s halves of a batch)."""
    before = getattr(_in_helper, "active", False)
    _in_helper.active = True
    try:
        yield
    finally:
        _in_helper.active = before


def _halves(run, n: int, unit: int = 1) -> None:
    """run(start, stop) over [0, n * unit): the second half of the n samples (`unit` entries
    each) in the helper thread when training with two threads."""
    if not _can_share() or n < 2:
        run(0, n * unit)
        return
    mid = n // 2 * unit
    other = _helper.submit(run, mid, n * unit)
    try:
        run(0, mid)
    finally:
        other.result()


# --------------------------------------------------------------------------- pooling


@dataclass
class MaxPoolCache:
    x_shape: tuple
    kernel: Pair
    stride: Pair
    padding: Pair
    x: np.ndarray | None = None  # the input, kept by the non-overlapping path
    out: np.ndarray | None = None  # the output, kept by the non-overlapping path
    index: np.ndarray | None = None  # see `argmax`; None until first needed
    # the non-overlapping path's first strictly greater offset per window: the argmax of every
    # window without NaN (a NaN never compares greater, so NaN windows need the general path)
    first: np.ndarray | None = None

    @property
    def argmax(self) -> np.ndarray:
        """(N, C, H_out, W_out) flat index u*kW + v into the kH*kW window of each maximum.

        The general path computes it in the forward pass; the non-overlapping path only when
        something asks (the trace's argmax, or a backward pass through a window with NaN).
        """
        if self.index is None:
            if self.first is not None and not np.isnan(self.out).any():
                self.index = self.first
            else:
                self.index = _maxpool_general(self.x, self.kernel, self.stride, self.padding)[1]
        return self.index


def _non_overlapping(kernel: Pair, stride: Pair, padding: Pair) -> bool:
    """Windows that never share a cell and no padding: each input cell is in at most one."""
    return padding == (0, 0) and stride[0] >= kernel[0] and stride[1] >= kernel[1]


def _maxpool_general(
    x: np.ndarray, kernel: Pair, stride: Pair, padding: Pair
) -> tuple[np.ndarray, np.ndarray]:
    """(max, argmax) of every window, one kernel offset at a time (any stride and padding)."""
    out_hw = output_hw(x.shape, kernel, stride, padding)
    x_pad = pad_nchw(x, padding, -np.inf)
    index_type = np.min_scalar_type(-(kernel[0] * kernel[1]))  # int8 for windows up to 127
    best = argmax = None
    for u, v, k in offsets(kernel):
        cand = offset_slice(x_pad, u, v, stride, out_hw)
        if best is None:
            best, argmax = cand.copy(), np.zeros(cand.shape, dtype=index_type)
            continue
        # A NaN wins (and a later NaN wins again), as in PyTorch's kernel:
        # `if (val > maxval || isnan(val))`. The output is NaN and its gradient goes there.
        better = (cand > best) | np.isnan(cand)
        np.maximum(best, cand, out=best)
        argmax = np.where(better, index_type.type(k), argmax)  # faster than argmax[better] = k
    return best, argmax


def maxpool2d_forward(
    x: np.ndarray, kernel: Pair, stride: Pair, padding: Pair = (0, 0)
) -> tuple[np.ndarray, MaxPoolCache]:
    """Max over each window; padding counts as -inf, as in PyTorch.

    Shapes: x (N, C, H, W) -> out (N, C, H_out, W_out). Ties go to the first maximum in
    row-major window order, which is what PyTorch does: an offset replaces the best so far only
    when strictly greater, or when it is NaN (so a window with NaN outputs NaN and routes its
    gradient to its last NaN, as PyTorch does).

    Non-overlapping windows without padding (stride >= kernel_size, e.g. the usual 2x2 pool
    with stride 2) take a shorter path with the same results: the forward pass is only
    element-wise maxima of the kH*kW strided views, and the backward pass finds each window's
    first maximum by comparing with the output (`maxpool2d_backward`).
    """
    kernel, stride, padding = tuple(kernel), tuple(stride), tuple(padding)
    if _non_overlapping(kernel, stride, padding):
        out_hw = output_hw(x.shape, kernel, stride, padding)
        index_type = np.min_scalar_type(-(kernel[0] * kernel[1]))
        out = np.empty((*x.shape[:2], *out_hw), dtype=x.dtype)
        first = np.zeros(out.shape, dtype=index_type)

        def run(start: int, stop: int) -> None:  # the samples [start, stop)
            xs, outs, firsts = x[start:stop], out[start:stop], first[start:stop]
            better = np.empty(outs.shape, dtype=bool)
            k_better = np.empty(outs.shape, dtype=index_type)
            for u, v, k in offsets(kernel):
                cand = offset_slice(xs, u, v, stride, out_hw)
                if k == 0:
                    np.copyto(outs, cand)
                    continue
                # first = the last offset that was strictly greater than all before it;
                # offsets grow, so max(first, k * better) records it without a branchy where.
                np.greater(cand, outs, out=better)
                np.multiply(better.view(np.int8), k, out=k_better, dtype=index_type)
                np.maximum(firsts, k_better, out=firsts)
                np.maximum(outs, cand, out=outs)  # a NaN stays NaN, as in the general path

        _halves(run, x.shape[0])
        cache = MaxPoolCache(x.shape, kernel, stride, padding, x=x, out=out, first=first)
        return out, cache
    best, argmax = _maxpool_general(x, kernel, stride, padding)
    return best, MaxPoolCache(x.shape, kernel, stride, padding, index=argmax)


def maxpool2d_argmax_rc(cache: MaxPoolCache) -> np.ndarray:
    """The input (row, col) each output cell came from: (N, C, H_out, W_out, 2), unpadded coords."""
    kh, kw = cache.kernel
    sh, sw = cache.stride
    argmax = cache.argmax
    h_out, w_out = argmax.shape[2:]
    rows = np.arange(h_out)[:, None] * sh + argmax // kw - cache.padding[0]
    cols = np.arange(w_out)[None, :] * sw + argmax % kw - cache.padding[1]
    return np.stack([rows, cols], axis=-1)


def maxpool2d_backward(
    dout: np.ndarray, cache: MaxPoolCache, channels_major: bool = False
) -> np.ndarray:
    """Route each gradient to its window's argmax; overlapping windows add up.

    Shapes: dout (N, C, H_out, W_out) -> dx (N, C, H, W), C-contiguous; with
    `channels_major=True` (training: the convolution before reads dx channel by channel) the
    non-overlapping path may return dx laid out (C, N, H, W) in memory instead, same values.
    """
    n, c, h, w = cache.x_shape
    out_hw = dout.shape[2:]
    if cache.first is not None and not np.isnan(cache.out).any():
        # Non-overlapping windows: every input cell gets its window's gradient or 0, written
        # once. The offset the forward pass found (the first maximum in row-major order, as the
        # general path's strict `>`) takes it; with no NaN that is every window's argmax.
        (kh, kw), (ho, wo) = cache.kernel, out_hw
        covered = cache.stride == cache.kernel and (ho * kh, wo * kw) == (h, w)
        shape = (c, n, h, w) if channels_major else (n, c, h, w)
        dx = (np.empty if covered else np.zeros)(shape, dtype=dout.dtype)
        if channels_major:
            dx = dx.transpose(1, 0, 2, 3)  # an (N, C, H, W) view

        def run(start: int, stop: int) -> None:  # the samples [start, stop)
            firsts, douts, dxs = cache.first[start:stop], dout[start:stop], dx[start:stop]
            hit = np.empty(douts.shape, dtype=bool)
            for u, v, k in offsets(cache.kernel):
                np.equal(firsts, k, out=hit)
                where_or_zero(hit, douts, out=offset_slice(dxs, u, v, cache.stride, out_hw))

        _halves(run, n)
        return dx
    ph, pw = cache.padding
    dx_pad = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=dout.dtype)
    argmax = cache.argmax
    for u, v, k in offsets(cache.kernel):
        offset_slice(dx_pad, u, v, cache.stride, out_hw)[...] += where_or_zero(argmax == k, dout)
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
    out_hw = output_hw(x.shape, kernel, stride, padding)
    x_pad = pad_nchw(x, padding)
    total = np.zeros((*x.shape[:2], *out_hw), dtype=x.dtype)
    for u, v, _ in offsets(kernel):
        total += offset_slice(x_pad, u, v, stride, out_hw)
    out = total / (kernel[0] * kernel[1])
    return out, AvgPoolCache(x.shape, kernel, stride, padding, out_hw)


def avgpool2d_backward(dout: np.ndarray, cache: AvgPoolCache) -> np.ndarray:
    """Every cell of a window receives dout / (kH*kW); overlaps add up.

    Shapes: dout (N, C, H_out, W_out) -> dx (N, C, H, W).
    """
    kh, kw = cache.kernel
    share = dout / (kh * kw)
    n, c, h, w = cache.x_shape
    ph, pw = cache.padding
    dx_pad = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=dout.dtype)
    for u, v, _ in offsets(cache.kernel):
        offset_slice(dx_pad, u, v, cache.stride, cache.out_hw)[...] += share
    return np.ascontiguousarray(crop_nchw(dx_pad, cache.padding))


# --------------------------------------------------------------------------- dense


@dataclass
class DenseCache:
    x: np.ndarray  # (N, in_features)
    w: np.ndarray  # (units, in_features)


def dense_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, DenseCache]:
    """z = x @ w.T + b.

    Shapes: x (N, in_features), w (units, in_features), b (units,) -> z (N, units).
    """
    return x @ w.T + b, DenseCache(x, w)


def dense_backward(
    dz: np.ndarray, cache: DenseCache, need_dx: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients of `dense_forward`.

    Shapes: dz (N, units) -> dx (N, in_features), dw (units, in_features), db (units,).
    dx = dz @ w, dw = dz.T @ x, db = sum of dz over the batch. `need_dx=False` skips dx.
    """
    dx = dz @ cache.w if need_dx else None
    return dx, dz.T @ cache.x, dz.sum(axis=0)
