"""Half of each training step in a second process: two cores without sharing a GIL.

Two threads of one process share one interpreter lock. A network whose step is many small
NumPy calls (LeNet: ~80 calls of a few microseconds each) holds it most of the time, so two
half-batch threads gain little (LeNet: 13,100-13,500 images/s against 12,300 with one thread).
A second process has an interpreter of its own: the parent computes the first half of the
batch while the worker computes the second half, and the parent adds the two halves' mean
gradients weighted by their sizes, as `train.training_step` does with two threads.

Shared state is one memory-mapped file, unlinked as soon as both processes have it open:

    params   float32, every parameter of the network, layer by layer, key by key (the parent
             writes them before each step; the worker's network reads them in place)
    x, y     float32 / int64, the second half of the batch
    grads    float32, the worker's mean gradients, in the parameters' layout
    out      float32, the worker's output a (N, classes) of its half

The pipes only carry the step's start (the half's size, 4 bytes) and its end (the loss, 8
bytes, or an error's text). The worker runs with one BLAS thread, as the parent does while it
uses the worker, and computes its half with the very code of a one-process step
(`train._whole_step`), so a run is deterministic for a seed. It ends when its input closes:
`close()`, the parent's exit, or the parent's death.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

# Field sizes of one message: the start (number of samples), the end (status + loss or length).
_START = struct.Struct("<i")
_END = struct.Struct("<bd")
_ERROR_LEN = struct.Struct("<i")
_QUIT = -1


def _layout(spec: dict, max_half: int) -> dict:
    """Offsets (in bytes) of the shared file's arrays for a network spec and a half batch."""
    from .network import Network

    net = Network.from_spec(spec)
    shapes = [[(k, list(v.shape)) for k, v in p.items()] for p in net.params]
    n_params = sum(int(np.prod(s)) for layer in shapes for _, s in layer)
    in_shape = list(net.input_shape)
    out_shape = list(net.spec["output_shape"])
    sizes = {
        "params": 4 * n_params,
        "x": 4 * max_half * int(np.prod(in_shape)),
        "y": 8 * max_half,
        "grads": 4 * n_params,
        "out": 4 * max_half * int(np.prod(out_shape)),
    }
    offsets, at = {}, 0
    for key, size in sizes.items():
        offsets[key] = at
        at += -(-size // 64) * 64  # each array on a 64-byte boundary
    return {
        "shapes": shapes,
        "n_params": n_params,
        "input_shape": in_shape,
        "output_shape": out_shape,
        "offsets": offsets,
        "bytes": at,
        "max_half": max_half,
    }


class _Views:
    """The shared file's arrays (both processes build the same views of it)."""

    def __init__(self, mm: np.memmap, layout: dict):
        off = layout["offsets"]
        n, m = layout["n_params"], layout["max_half"]

        def view(key, dtype, shape):
            count = int(np.prod(shape))
            return np.frombuffer(mm, dtype, count, off[key]).reshape(shape)

        self.params_flat = view("params", np.float32, (n,))
        self.grads_flat = view("grads", np.float32, (n,))
        self.x = view("x", np.float32, (m, *layout["input_shape"]))
        self.y = view("y", np.int64, (m,))
        self.out = view("out", np.float32, (m, *layout["output_shape"]))
        self.params = self._split(self.params_flat, layout["shapes"])
        self.grads = self._split(self.grads_flat, layout["shapes"])

    @staticmethod
    def _split(flat: np.ndarray, shapes: list) -> list[dict[str, np.ndarray]]:
        out, at = [], 0
        for layer in shapes:
            entry = {}
            for key, shape in layer:
                size = int(np.prod(shape))
                entry[key] = flat[at : at + size].reshape(shape)
                at += size
            out.append(entry)
        return out


class StepWorker:
    """A worker process that computes the second half of each training step of one network."""

    def __init__(self, spec: dict, conv_algorithm: str, max_half: int):
        self.layout = _layout(spec, max_half)
        self.max_half = max_half
        fd, path = tempfile.mkstemp(prefix="cnnviz-step-", dir=_shm_dir())
        try:
            os.ftruncate(fd, self.layout["bytes"])
            self._mm = np.memmap(path, np.uint8, "r+", shape=(self.layout["bytes"],))
        finally:
            os.close(fd)
        self.views = _Views(self._mm, self.layout)
        env = dict(os.environ)
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = "1"
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cnncore.stepworker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
                cwd=root,
            )
            hello = json.dumps(
                {
                    "spec": spec,
                    "conv_algorithm": conv_algorithm,
                    "layout": self.layout,
                    "path": path,
                }
            ).encode()
            self.proc.stdin.write(_ERROR_LEN.pack(len(hello)) + hello)
            self.proc.stdin.flush()
            self._finish()  # the worker has opened the file and built its network
        finally:
            os.unlink(path)  # the mappings stay; nothing is left behind on any exit
        self.pending = False

    def start(self, params: list[dict[str, np.ndarray]], x: np.ndarray, y: np.ndarray) -> None:
        """Begin the worker's half: x (n, C, H, W) float32, y (n,) class indices, n <= max_half."""
        n = len(x)
        if not 0 < n <= self.max_half:
            raise ValueError(f"a half batch of {n} samples (this worker takes 1..{self.max_half})")
        for shared, own in zip(self.views.params, params, strict=True):
            for k, v in own.items():
                np.copyto(shared[k], v)
        np.copyto(self.views.x[:n], x)
        np.copyto(self.views.y[:n], y)
        try:
            self.proc.stdin.write(_START.pack(n))
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise RuntimeError(self._ended()) from None
        self.pending, self.n = True, n

    def finish(self) -> tuple[np.ndarray, float, list[dict[str, np.ndarray]]]:
        """The worker's (output, mean loss, gradients); views of the shared file, valid until
        the next `start`."""
        self.pending = False
        loss = self._finish()
        return self.views.out[: self.n], loss, self.views.grads

    def _finish(self) -> float:
        head = self.proc.stdout.read(_END.size)
        if len(head) < _END.size:
            raise RuntimeError(self._ended())
        status, loss = _END.unpack(head)
        if status:
            (size,) = _ERROR_LEN.unpack(self.proc.stdout.read(_ERROR_LEN.size))
            raise RuntimeError("training worker: " + self.proc.stdout.read(size).decode())
        return loss

    def cpu_seconds(self) -> float:
        """CPU time the worker process has used so far (user + system; Linux's /proc, else 0)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def _ended(self) -> str:
        return f"the training worker process ended (exit code {self.proc.wait()})"

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                if self.pending:
                    self.finish()
                self.proc.stdin.write(_START.pack(_QUIT))
                self.proc.stdin.close()
            except (OSError, RuntimeError, ValueError):
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):  # unsent bytes to a worker that is gone
                stream.close()


def _shm_dir() -> str | None:
    """A RAM-backed directory for the shared file where the system has one."""
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


# Workers kept between training loops (a benchmark's blocks), one per network, algorithm and
# batch size, at most `KEEP` (the least recently used one ends first); `close()` or the exit
# ends them.
KEEP = 2
_workers: dict[tuple, StepWorker] = {}


def worker_for(spec: dict, conv_algorithm: str, max_half: int) -> StepWorker:
    key = (json.dumps(spec, sort_keys=True), conv_algorithm, max_half)
    worker = _workers.pop(key, None)
    if worker is not None and worker.proc.poll() is not None:
        worker.close()
        worker = None
    if worker is None:
        while len(_workers) >= KEEP:
            _workers.pop(next(iter(_workers))).close()
        worker = StepWorker(spec, conv_algorithm, max_half)
    _workers[key] = worker  # now the most recently used
    return worker


def close() -> None:
    """End every worker process."""
    while _workers:
        _workers.popitem()[1].close()


atexit.register(close)


# --------------------------------------------------------------------------- the worker side


def _serve() -> None:
    """The worker process: read a network, then compute half-batch steps until told to stop."""
    # Ctrl-C reaches the whole process group: the parent stops, and this worker ends when its
    # input closes, without a traceback of its own
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    commands = sys.stdin.buffer
    replies = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # anything printed goes to stderr, never into the replies

    from . import train
    from .memory import keep_freed_memory
    from .network import Network

    keep_freed_memory()  # as the training process does: no page faults for each step's arrays

    (size,) = _ERROR_LEN.unpack(commands.read(_ERROR_LEN.size))
    hello = json.loads(commands.read(size))
    layout = hello["layout"]
    mm = np.memmap(hello["path"], np.uint8, "r+", shape=(layout["bytes"],))
    views = _Views(mm, layout)
    model = Network.from_spec(hello["spec"]).astype(np.float32)
    for layer, shared in zip(model.layers, views.params, strict=True):
        layer.params = shared  # the parent writes the current weights here before each step
    algorithm = hello["conv_algorithm"]
    replies.write(_END.pack(0, 0.0))
    while True:
        head = commands.read(_START.size)
        if len(head) < _START.size:
            return  # the parent closed our input or died
        (n,) = _START.unpack(head)
        if n == _QUIT:
            return
        try:
            a, loss, grads = train._whole_step(model, views.x[:n], views.y[:n], algorithm)
            for shared, g in zip(views.grads, grads, strict=True):
                for k, v in g.items():
                    np.copyto(shared[k], v)
            np.copyto(views.out[:n], a)
            replies.write(_END.pack(0, loss))
        except Exception as exc:  # reported to the parent, which raises it
            text = f"{type(exc).__name__}: {exc}".encode()
            replies.write(_END.pack(1, 0.0) + _ERROR_LEN.pack(len(text)) + text)


if __name__ == "__main__":
    _serve()
