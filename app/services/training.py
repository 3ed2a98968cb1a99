"""Train mode: one training run, owned by one WebSocket connection, trained in its own thread.

The run trains with the engine's batched float32 path (`Network.forward/backward`, the
optimizers of `cnncore.optim`) on the MNIST training split, evaluates on a fixed subset of dev,
and answers commands between two optimizer steps, so a `trace` sees exactly the parameters and
the batch that the next step will use. Traces go through `services.trace_json`, the function
behind POST /api/trace, on float64 copies of the same parameters: the same format, the same
selection options, the exact float64 path.

Threading: the event loop (see `train_session.py`) only reads and writes the socket. Commands
reach the run's thread through a queue; everything the run says goes through an `Outbox`:
messages that must arrive (eval, trace, export, snapshot on request, state, errors) queue up to
`Settings.train_max_queued` and then make the training thread wait, and step messages are
merged into one pending message (per-step losses kept, at most `STEP_LOSSES_KEPT`), so a slow
client costs bounded memory and never sees a stale backlog.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import ValidationError

from cnncore import Network, augment, data
from cnncore.memory import keep_freed_memory
from cnncore.optim import SGD, Adam

from ..errors import ApiError
from ..schemas import TraceRequest
from ..settings import Settings
from .catalog import load_model
from .custom import custom_network
from .serialize import dumps
from .trace import trace_json
from .train_protocol import SetLr, Simple, StartMessage, TraceMessage

log = logging.getLogger("cnnviz")

STEP_LOSSES_KEPT = 500  # per-step losses carried by one aggregated step message, at most
MAPS_PER_LAYER = 8  # feature maps of the probe digit per conv layer in a snapshot
THUMBNAILS = 8  # batch digits (original and augmented) in a snapshot
GALLERY = 60  # dev digits in the final gallery (the misclassified first)
DEV_FALLBACK = 5000  # held out of train when the data module has no dev split
# dev digits per forward pass: the im2col buffer of a chunk of 500 is ~160 MB for the digit
# network, of 128 ~40 MB, at the same speed
EVAL_CHUNK = 128


# ---------------------------------------------------------------------------- data
@dataclass(frozen=True)
class Digits:
    x_train: np.ndarray
    y_train: np.ndarray
    x_dev: np.ndarray
    y_dev: np.ndarray
    source: str


_data_lock = threading.Lock()
_data: Digits | None = None


def digits() -> Digits:
    """MNIST's training split and dev, as `cnncore.data.load_split` defines them, loaded once
    per process (read-only afterwards). Without a dev split, the last 5,000 training digits."""
    global _data
    with _data_lock:
        if _data is None:
            split = data.load_split()
            x, y = split.x_train, split.y_train
            x_dev, y_dev = getattr(split, "x_dev", None), getattr(split, "y_dev", None)
            source = "train / dev of cnncore.data.load_split"
            if x_dev is None:
                n = min(DEV_FALLBACK, len(x) // 5)
                x, y, x_dev, y_dev = x[:-n], y[:-n], x[-n:], y[-n:]
                source = f"train of cnncore.data.load_split, last {n} held out as dev"
            for a in (x, y, x_dev, y_dev):
                a.setflags(write=False)
            _data = Digits(x, y.astype(np.int64), x_dev, y_dev.astype(np.int64), source)
        return _data


def release_memory() -> bool:
    """Give the freed memory of every malloc arena back to the OS (glibc's malloc_trim; a no-op
    elsewhere). A run's thread has its own arena, and `keep_freed_memory` keeps freed blocks in
    it for reuse while the run trains; when the run ends they go back."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        return bool(libc.malloc_trim(0))
    except (OSError, AttributeError, TypeError):
        return False


# ---------------------------------------------------------------------------- slots
class RunSlots:
    """How many runs this worker process trains at once (`Settings.train_max_runs`)."""

    def __init__(self, limit: int):
        self.limit, self.active = limit, 0
        self._lock = threading.Lock()

    def acquire(self) -> bool:
        with self._lock:
            if self.active >= self.limit:
                return False
            self.active += 1
            return True

    def release(self) -> None:
        with self._lock:
            self.active -= 1


# ---------------------------------------------------------------------------- outbox
class Outbox:
    """What the run has to say, waiting for the socket. Thread-safe; `notify` wakes the sender."""

    def __init__(self, max_queued: int, notify: Callable[[], None], max_bytes: int = 64 << 20):
        self.max_queued, self.max_bytes, self.notify = max_queued, max_bytes, notify
        self._cond = threading.Condition()
        self._queue: deque[tuple[bytes, int | None]] = deque()
        self.queued_bytes = 0
        self._step: dict | None = None
        self._snapshot: bytes | None = None
        self.closed = False
        self.dropped_steps = 0  # step messages merged into a later one
        self.dropped_snapshots = 0

    def put(self, payload: bytes, close_code: int | None = None) -> None:
        """A message that must arrive. Waits while the queue is full (the client is slow)."""
        with self._cond:
            while (
                (len(self._queue) >= self.max_queued or self.queued_bytes >= self.max_bytes)
                and not self.closed
                and close_code is None
            ):
                self._cond.wait(0.25)
            if self.closed:
                return
            self._queue.append((payload, close_code))
            self.queued_bytes += len(payload)
        self.notify()

    def put_step(self, msg: dict, loss: float) -> None:
        """The newest step message; one not yet sent is merged in (its losses kept)."""
        with self._cond:
            if self.closed:
                return
            old = self._step
            if old is not None:
                self.dropped_steps += 1
                losses = old["losses"]
                losses.append(loss)
                first = old["first_step"]
                if len(losses) > STEP_LOSSES_KEPT:
                    del losses[: len(losses) - STEP_LOSSES_KEPT]
                    first = msg["step"] - len(losses) + 1
                msg["losses"], msg["first_step"] = losses, first
            else:
                msg["losses"], msg["first_step"] = [loss], msg["step"]
            self._step = msg
        self.notify()

    def flush_step(self) -> None:
        """Queue the pending step message now, in order with the queued ones."""
        with self._cond:
            msg, self._step = self._step, None
            if msg is None or self.closed:
                return
            payload = dumps(msg)
            self._queue.append((payload, None))
            self.queued_bytes += len(payload)
        self.notify()

    def put_snapshot(self, payload: bytes) -> None:
        with self._cond:
            if self.closed:
                return
            if self._snapshot is not None:
                self.dropped_snapshots += 1
            self._snapshot = payload
        self.notify()

    def take(self, step_allowed: bool) -> tuple[bytes, int | None] | None:
        """The next message to send: queued ones in order, then the snapshot, then the step."""
        with self._cond:
            if self._queue:
                item = self._queue.popleft()
                self.queued_bytes -= len(item[0])
                self._cond.notify_all()
                return item
            if self._snapshot is not None:
                snap, self._snapshot = self._snapshot, None
                return snap, None
            if step_allowed and self._step is not None:
                msg, self._step = self._step, None
                return dumps(msg), None
            return None

    def has_step(self) -> bool:
        with self._cond:
            return self._step is not None

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._queue.clear()
            self.queued_bytes = 0
            self._step = self._snapshot = None
            self._cond.notify_all()


# ---------------------------------------------------------------------------- preparing
def _mnist_compatible(net: Network) -> str | None:
    spec = net.spec
    if list(spec["input_shape"]) != [1, 28, 28]:
        return f"the network's input_shape is {spec['input_shape']}; MNIST digits need [1, 28, 28]"
    if list(spec["output_shape"]) != [10] or not net.is_classifier:
        return "the network must end in 10 outputs with softmax (the 10 digit classes)"
    if net.loss_name != "cross_entropy":
        return "the network must use the cross_entropy loss (classes, not regression)"
    return None


def prepare_network(start: StartMessage, s: Settings) -> Network:
    """The run's starting network (float64), checked against the caps; ApiError naming the
    field otherwise. Cheap: no data is loaded here."""
    if start.model is not None:
        base, _ = load_model(s, start.model, ("start", "model"))
        net = (
            base.copy()
            if start.init == "pretrained"
            else Network.from_spec(base.spec, seed=start.seed)
        )
        loc: tuple = ("start", "model")
    else:
        try:
            req = TraceRequest(network=start.network, seed=start.seed)
            net = custom_network(req, s)
        except ApiError as exc:
            rest = exc.loc[1:] if exc.loc and exc.loc[0] == "body" else exc.loc
            raise ApiError(("start", *rest), exc.msg, exc.type) from None
        loc = ("start", "network")
    problem = _mnist_compatible(net)
    if problem:
        raise ApiError(loc, problem, "not_mnist")
    madds = net.multiply_adds()
    if madds > s.train_max_multiply_adds:
        raise ApiError(
            loc,
            f"the network needs {madds:,} multiply-adds per digit; train mode's cap is "
            f"{s.train_max_multiply_adds:,}",
            "cap",
        )
    return net


def make_optimizer(start: StartMessage, params: list[dict]) -> SGD | Adam:
    o = start.optimizer
    if o.name == "adam":
        return Adam(
            params, lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps, weight_decay=o.weight_decay
        )
    momentum = o.momentum if o.name == "momentum" else 0.0
    return SGD(params, lr=o.lr, momentum=momentum, weight_decay=o.weight_decay)


def _norm(a: np.ndarray) -> float:
    return float(np.sqrt(np.sum(np.square(a, dtype=np.float64))))


def _norms(p: dict, keys: list[str]) -> float:
    """The L2 norm of several arrays taken together (a block's weights)."""
    return float(np.sqrt(sum(_norm(p[k]) ** 2 for k in keys)))


def _u8(x: np.ndarray) -> np.ndarray:
    """Images in [0, 1] as 0..255 integers (for thumbnails: small to send)."""
    return np.rint(np.clip(x, 0, 1) * 255).astype(np.uint8)


class RunError(Exception):
    """A command the run cannot do now (not fatal: the connection stays open)."""

    def __init__(self, loc: tuple, msg: str, type: str = "state"):
        super().__init__(msg)
        self.loc, self.msg, self.type = loc, msg, type


# ---------------------------------------------------------------------------- the run
class TrainRun:
    """One training run. `start()` launches its thread; `command()` and `close()` are called
    from the event loop; everything else runs in the thread."""

    def __init__(self, start: StartMessage, net: Network, s: Settings, outbox: Outbox):
        self.cfg, self.settings, self.outbox = start, s, outbox
        self.start_net = net
        self.commands: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._main, name="cnnviz-train", daemon=True)
        self.state = "starting"  # running | paused | done
        self.closing = False

    # -- called from the event loop
    def start(self) -> None:
        self.thread.start()

    def command(self, cmd: Any) -> None:
        self.commands.put(cmd)

    def close(self) -> None:
        """Stop at the next step boundary and free everything (the thread exits)."""
        self.closing = True
        self.outbox.close()
        self.commands.put(None)

    @property
    def training(self) -> bool:
        return self.state in ("starting", "running")

    # -- the thread
    def _send(self, msg: dict) -> None:
        self.outbox.put(dumps(msg))

    def _main(self) -> None:
        try:
            self._setup()
            while not self.closing:
                if self.state == "running":
                    self._drain(block=False)
                    if self.state == "running" and not self.closing:
                        self._train_step()
                else:
                    self._drain(block=True)
        except Exception:  # a bug, not the client's fault: say so and close
            log.exception("train run failed")
            self.outbox.put(
                dumps(
                    {
                        "type": "error",
                        "fatal": True,
                        "detail": [
                            {
                                "loc": [],
                                "msg": "internal error in the training run",
                                "type": "internal",
                            }
                        ],
                    }
                ),
                close_code=1011,
            )
        finally:
            self._free()

    def _free(self) -> None:
        for name in ("net", "opt", "start_net", "batch", "_grads", "last_grads", "_p64"):
            setattr(self, name, None)
        release_memory()

    def _setup(self) -> None:
        cfg = self.cfg
        # as `cnnviz train` does: reuse freed blocks instead of page-faulting fresh ones every
        # step (~40 % of a small network's step); process-wide, so freed memory up to glibc's
        # trim threshold (~128 MiB) stays with the process after the run
        keep_freed_memory()
        d = digits()
        self.data = d
        self.n_eval = min(cfg.eval_size, len(d.x_dev))
        self.net = self.start_net.astype(np.float32)
        self.start_net = None
        self.opt = make_optimizer(cfg, self.net.params)
        self.aug = augment.AugmentConfig(**cfg.augment.model_dump())
        self.rng = np.random.default_rng(cfg.seed)
        self.order = np.empty(0, dtype=np.int64)
        self.pos = 0
        self.step = 0
        self.seen = 0
        self.epoch = 0
        self.batch: dict | None = None
        self._grads: tuple[int, float, float, list] | None = None
        self.last_grads: list | None = None
        self._p64: tuple[int, list] | None = None
        self.last_eval: dict | None = None
        self.rate = 0.0  # images per second of training, smoothed
        self.wall_rate = 0.0  # images per second of wall clock while running
        self.train_s = 0.0  # seconds spent training (evaluations and snapshots not counted)
        self._last_t = None
        self.probe = 0  # the probe digit: dev digit 0
        self.conv_layers = [
            i for i, L in enumerate(self.net.spec["layers"]) if L["type"] == "conv2d"
        ]
        self.param_layers = [i for i, p in enumerate(self.net.params) if p]
        # layers whose own weight is "w" (conv2d, dense): a worked update's default; a block's
        # parameters are dotted ("layers.0.w", "branches.1.0.w", "projection.w")
        self.plain_layers = [i for i in self.param_layers if "w" in self.net.params[i]]
        self._next_batch()
        flip_ex = self._flip_example()
        self._send(
            {
                "type": "started",
                "network": self.net.spec,
                "init": cfg.init,
                "seed": cfg.seed,
                "optimizer": cfg.optimizer.model_dump(),
                "augment": self.aug.to_dict(),
                "batch_size": cfg.batch_size,
                "max_steps": cfg.max_steps,
                "eval_every": cfg.eval_every,
                "eval_size": self.n_eval,
                "train_size": len(d.x_train),
                "dev_size": len(d.x_dev),
                "data": d.source,
                "steps_per_epoch": math.ceil(len(d.x_train) / cfg.batch_size),
                "dtype": "float32",
                "flip_example": flip_ex,
            }
        )
        self._evaluate()
        self._snapshot(force=True)
        self._set_state("paused" if cfg.paused else "running")

    def _flip_example(self) -> dict:
        """A dev 2 and its mirror image (why flip is a bad augmentation for digits)."""
        d = self.data
        idx = np.flatnonzero(d.y_dev[: self.n_eval] == 2)
        j = int(idx[0]) if len(idx) else 0
        img = d.x_dev[j : j + 1]
        mirrored = img[..., ::-1]
        with np.errstate(all="ignore"):
            probs = self.net.predict(np.concatenate([img, mirrored]).astype(np.float32))
        return {
            "dev": j,
            "label": int(d.y_dev[j]),
            "image": _u8(img[0, 0]),
            "flipped": _u8(mirrored[0, 0]),
        } | (
            {"start_predictions": probs.argmax(axis=1).tolist()}
            if self.cfg.init == "pretrained"
            else {}
        )

    def _set_state(self, state: str, **extra: Any) -> None:
        self.outbox.flush_step()  # the steps so far arrive before the new state
        self.state = state
        self._last_t = None
        self._send({"type": "state", "state": state, "step": self.step, **extra})

    # -- batches
    def _next_batch(self) -> None:
        d, bs = self.data, self.cfg.batch_size
        take = []
        need = bs
        while need:
            if self.pos >= len(self.order):
                self.order = self.rng.permutation(len(d.x_train))
                self.pos = 0
            chunk = self.order[self.pos : self.pos + need]
            self.pos += len(chunk)
            need -= len(chunk)
            take.append(chunk)
        idx = np.concatenate(take)
        x = d.x_train[idx]
        xa = augment.apply(x, self.rng, self.aug) if self.aug.active else x
        self.batch = {
            "index": idx,
            "x": x,
            "x_aug": np.ascontiguousarray(xa, dtype=np.float32),
            "y": d.y_train[idx],
        }

    def _batch_grads(self) -> tuple[float, float, list]:
        """(loss, accuracy, grads) of the pending batch at the current params, computed once."""
        if self._grads is not None and self._grads[0] == self.step:
            return self._grads[1:]
        b = self.batch
        with np.errstate(all="ignore"):
            a, records = self.net.forward(b["x_aug"])
            y1 = self.net.encode_target(b["y"], len(b["y"]), dtype=np.float32)
            loss = float(self.net.backward(records, y1, input_grad=False))
        acc = float(np.mean(a.argmax(axis=1) == b["y"]))
        grads = [rec.grads() for rec in records]
        del records, a
        self._grads = (self.step, loss, acc, grads)
        return loss, acc, grads

    # -- training
    def _train_step(self) -> None:
        t0 = time.perf_counter()
        loss, acc, grads = self._batch_grads()
        if not math.isfinite(loss):
            self._finish("diverged")
            return
        with np.errstate(all="ignore"):
            self.opt.step(grads)
        self.last_grads, self._grads = grads, None
        self.step += 1
        bs = self.cfg.batch_size
        self.seen += bs
        n_train = len(self.data.x_train)
        self._next_batch()
        now = time.perf_counter()
        # images_per_s: training alone (forward, backward, update, the next batch), smoothed;
        # the ETA uses the wall clock between steps (evaluations and snapshots included)
        self.train_s += now - t0
        inst = bs / max(now - t0, 1e-9)
        self.rate = inst if self.rate == 0 else 0.9 * self.rate + 0.1 * inst
        if self._last_t is not None:
            wall = bs / max(now - self._last_t, 1e-9)
            self.wall_rate = wall if self.wall_rate == 0 else 0.95 * self.wall_rate + 0.05 * wall
        self._last_t = now
        left = self.cfg.max_steps - self.step
        self.outbox.put_step(
            {
                "type": "step",
                "step": self.step,
                "epoch": self.seen // n_train + 1,
                "epoch_progress": round(self.seen / n_train, 4),
                "loss": loss,
                "batch_accuracy": acc,
                "lr": self.opt.lr,
                "images_per_s": round(self.rate, 1),
                "eta_s": round(left * bs / (self.wall_rate or self.rate), 1),
                "train_s": round(self.train_s, 3),
            },
            loss,
        )
        if self.step % self.cfg.eval_every == 0:
            self._evaluate()
        if self.step % self.cfg.snapshot_every == 0:
            self._snapshot()
        if self.step >= self.cfg.max_steps:
            self._finish("max_steps")

    def _predict_dev(self) -> np.ndarray:
        d, out = self.data, []
        with np.errstate(all="ignore"):
            for i in range(0, self.n_eval, EVAL_CHUNK):
                out.append(self.net.predict(d.x_dev[i : min(i + EVAL_CHUNK, self.n_eval)]))
        return np.concatenate(out)

    def _evaluate(self) -> np.ndarray:
        probs = self._predict_dev()
        y = self.data.y_dev[: self.n_eval]
        p = np.clip(probs[np.arange(len(y)), y].astype(np.float64), 1e-300, None)
        self.last_eval = {
            "type": "eval",
            "split": "dev",
            "step": self.step,
            "loss": float(-np.mean(np.log(p))),
            "accuracy": float(np.mean(probs.argmax(axis=1) == y)),
            "size": int(len(y)),
        }
        self._send(self.last_eval)
        return probs

    def _snapshot(self, force: bool = False) -> None:
        net, d = self.net, self.data
        probe = d.x_dev[self.probe : self.probe + 1]
        with np.errstate(all="ignore"):
            out, records = net.forward(probe)
        maps = [
            {
                "layer": i,
                "channels": int(records[i].a.shape[1]),
                "maps": records[i].a[0, :MAPS_PER_LAYER],
            }
            for i in self.conv_layers
        ]
        del records
        first = self.param_layers[0] if self.param_layers else None
        kernels = None
        if first is not None and net.spec["layers"][first]["type"] == "conv2d":
            kernels = {"layer": first, "w": net.params[first]["w"]}
        norms = []
        for i in self.param_layers:
            p = net.params[i]
            g = self.last_grads[i] if self.last_grads else None
            # a block's norms are over all of its weights (its biases): every key ending in w (b)
            ws = [k for k in p if k == "w" or k.endswith(".w")]
            bs = [k for k in p if k == "b" or k.endswith(".b")]
            norms.append(
                {
                    "layer": i,
                    "type": net.spec["layers"][i]["type"],
                    "weight": _norms(p, ws),
                    "grad": _norms(g, ws) if g else None,
                    "bias": _norms(p, bs),
                    "bias_grad": _norms(g, bs) if g else None,
                }
            )
        b = self.batch
        k = min(THUMBNAILS, len(b["y"]))
        msg = {
            "type": "snapshot",
            "step": self.step,
            "kernels": kernels,
            "feature_maps": maps,
            "probe": {
                "dev": self.probe,
                "label": int(d.y_dev[self.probe]),
                "image": _u8(probe[0, 0]),
                "probabilities": out[0],
                "prediction": int(out[0].argmax()),
            },
            "norms": norms,
            "batch": {
                "step": self.step + 1,
                "labels": b["y"][:k],
                "original": _u8(b["x"][:k, 0]),
                "augmented": _u8(b["x_aug"][:k, 0]),
            },
        }
        payload = dumps(msg)
        if force:
            self.outbox.put(payload)
        else:
            self.outbox.put_snapshot(payload)

    def _finish(self, reason: str) -> None:
        self.outbox.flush_step()
        already = self.last_eval is not None and self.last_eval["step"] == self.step
        probs = self._predict_dev() if already else self._evaluate()
        y = self.data.y_dev[: self.n_eval]
        pred = probs.argmax(axis=1)
        conf = np.zeros((10, 10), dtype=np.int64)
        np.add.at(conf, (y, pred), 1)
        wrong = np.flatnonzero(pred != y)
        right = np.flatnonzero(pred == y)
        # the least confident mistakes last: the most confident ones are the most instructive
        wrong = wrong[np.argsort(-probs[wrong, pred[wrong]], kind="stable")]
        chosen = np.concatenate([wrong[:GALLERY], right[: max(0, GALLERY - len(wrong[:GALLERY]))]])
        gallery = [
            {
                "dev": int(j),
                "label": int(y[j]),
                "prediction": int(pred[j]),
                "confidence": float(probs[j, pred[j]]),
                "image": _u8(self.data.x_dev[j, 0]),
            }
            for j in chosen
        ]
        self._snapshot(force=True)
        self._send(
            {
                "type": "done",
                "reason": reason,
                "step": self.step,
                "eval": self.last_eval,
                "confusion": conf,
                "misclassified": int(len(wrong)),
                "gallery": gallery,
            }
        )
        self._set_state("done", reason=reason)

    # -- commands
    def _drain(self, block: bool) -> None:
        try:
            cmd = self.commands.get(timeout=1.0) if block else self.commands.get_nowait()
        except queue.Empty:
            return
        while True:
            if cmd is None or self.closing:
                return
            try:
                self._handle(cmd)
            except RunError as exc:
                self._send(
                    {
                        "type": "error",
                        "fatal": False,
                        "detail": [{"loc": list(exc.loc), "msg": exc.msg, "type": exc.type}],
                    }
                )
            except ApiError as exc:  # from the trace service: a bad selection field
                self._send({"type": "error", "fatal": False, "detail": [exc.item()]})
            except ValidationError as exc:
                err = exc.errors(include_url=False, include_input=False)[0]
                item = {"loc": ["trace", *err["loc"]], "msg": err["msg"], "type": err["type"]}
                self._send({"type": "error", "fatal": False, "detail": [item]})
            try:
                cmd = self.commands.get_nowait()
            except queue.Empty:
                return

    def _handle(self, cmd: Any) -> None:
        if isinstance(cmd, SetLr):
            self.opt.lr = float(cmd.lr)
            self._send({"type": "lr", "lr": self.opt.lr, "step": self.step})
        elif isinstance(cmd, TraceMessage):
            self._trace(cmd)
        elif isinstance(cmd, Simple):
            kind = cmd.type
            if kind == "export":
                self._export()
            elif kind == "snapshot":
                self._snapshot(force=True)
            elif kind == "stop":
                if self.state != "done":
                    self._finish("stopped")
            elif self.state == "done":
                raise RunError((kind,), f"the run has finished ({kind} is not possible)")
            elif kind == "pause":
                if self.state == "running":
                    self._set_state("paused")
                    self._snapshot(force=True)
            elif kind == "resume":
                if self.state == "paused":
                    self._set_state("running")
            elif kind == "step":
                if self.state != "paused":
                    raise RunError(("step",), "'step' works while paused; send 'pause' first")
                self._train_step()
                self.outbox.flush_step()
                if self.state == "paused":
                    self._snapshot(force=True)
                    self._set_state("paused")

    def _params64(self) -> list:
        """The current parameters as float64 nested lists (exact: float32 -> float64)."""
        if self._p64 is None or self._p64[0] != self.step:
            self._p64 = (
                self.step,
                [{k: v.astype(np.float64).tolist() for k, v in p.items()} for p in self.net.params],
            )
        return self._p64[1]

    def _weight(self, cmd: TraceMessage, grads: list) -> tuple[int, str, tuple]:
        if cmd.weight is None:
            layer = (self.plain_layers or self.param_layers)[0]
            if "w" not in self.net.params[layer]:  # only blocks have parameters: not expected
                raise RunError(("trace", "weight"), "name a layer with a weight 'w'", "invalid")
            g = grads[layer]["w"]
            return (
                layer,
                "w",
                tuple(int(i) for i in np.unravel_index(np.argmax(np.abs(g)), g.shape)),
            )
        w = cmd.weight
        if w.layer >= len(self.net.params) or w.name not in self.net.params[w.layer]:
            raise RunError(
                ("trace", "weight", "layer"),
                f"layer {w.layer} has no parameter {w.name!r}; these do: {self.plain_layers} "
                "(a block's parameters are not worked out one by one)",
                "invalid",
            )
        shape = self.net.params[w.layer][w.name].shape
        if len(w.index) != len(shape) or any(
            not 0 <= i < n for i, n in zip(w.index, shape, strict=True)
        ):
            raise RunError(
                ("trace", "weight", "index"),
                f"layer {w.layer}'s {w.name} is shaped {list(shape)}: give one index per "
                "axis, in range",
                "invalid",
            )
        return w.layer, w.name, tuple(w.index)

    def _trace(self, cmd: TraceMessage) -> None:
        d = self.data
        update = None
        if cmd.index is not None:
            n = len(self.batch["y"])
            if cmd.index >= n:
                raise RunError(
                    ("trace", "index"), f"the batch has {n} examples: index 0 to {n - 1}", "range"
                )
            x = self.batch["x_aug"][cmd.index]
            label = int(self.batch["y"][cmd.index])
            if self.state != "done":
                loss, _, grads = self._batch_grads()
                layer, key, idx = self._weight(cmd, grads)
                update = self.opt.explain(layer, key, idx, grads[layer][key][idx])
                update.update(
                    {
                        "layer": layer,
                        "name": key,
                        "index": list(idx),
                        "batch_loss": loss,
                        "batch_size": len(self.batch["y"]),
                    }
                )
        else:
            if cmd.dev >= self.n_eval:
                raise RunError(
                    ("trace", "dev"), f"dev digits 0 to {self.n_eval - 1} are evaluated", "range"
                )
            x, label = d.x_dev[cmd.dev], int(d.y_dev[cmd.dev])
        req = TraceRequest(
            network=self.net.spec,
            params=self._params64(),
            input=x.astype(np.float64).tolist(),
            target=label,
            **cmd.selection(),
        )
        body = trace_json(req, self.settings)
        head = {
            "type": "trace",
            "step": self.step,
            "index": cmd.index,
            "dev": cmd.dev,
            "label": label,
            "update": update,
        }
        self.outbox.put(dumps(head)[:-1] + b',"trace":' + body + b"}")

    def _export(self) -> None:
        ev = self.last_eval or {}
        self._send(
            {
                "type": "export",
                "step": self.step,
                "name": "trained",
                "description": f"trained in train mode for {self.step} steps",
                "dataset": "MNIST",
                "test_accuracy": None,
                "dev_accuracy": ev.get("accuracy"),
                "spec": self.net.spec,
                "network": self.net.spec,
                "params": [
                    {k: v.astype(np.float64) for k, v in p.items()} for p in self.net.params
                ],
            }
        )
