"""The training worker process (cnncore.stepworker, train.two_cores): the second half of each
batch in a second process gives the helper thread's gradients bit for bit, a run repeats, and a
worker that fails, dies or is left behind never hangs the trainer or outlives it."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from cnncore import Network, stepworker
from cnncore import functional as F  # noqa: N812
from cnncore import train as T  # noqa: N812

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    (os.cpu_count() or 1) < 2, reason="one CPU: training never starts a worker process"
)


def _batch(n: int, seed: int):
    rng = np.random.default_rng(seed)
    return rng.random((n, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, n)


def _model(spec: dict, seed: int = 5) -> Network:
    model = Network.from_spec(spec, seed=seed).astype(np.float32)
    for layer in model.layers:  # non-zero biases, so that their gradients are tested too
        if "b" in layer.params:
            layer.params["b"] = np.full(layer.params["b"].shape, 0.05, np.float32)
    return model


@pytest.fixture(autouse=True)
def _no_worker_left():
    yield
    stepworker.close()


def _rel(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


@pytest.mark.parametrize("name", ["lenet", "digits"])
def test_a_step_in_two_processes_equals_the_helper_thread_step_bit_for_bit(name):
    """Both compute each half with the same one-thread code and add the halves alike."""
    spec = {"lenet": T.LENET_SPEC, "digits": T.DIGITS_SPEC}[name]
    model = _model(spec)
    x, y = _batch(15, 12)  # odd: halves of 7 and 8
    with F.training_threads(threads=2):
        assert F._helper is not None
        thread_a, thread_loss, thread_grads = T.training_step(model, x, y, "auto")
    with T.two_cores(model, "auto", 16, threads=2):
        assert T._process is not None and T._process.max_half == 8
        a, loss, grads = T.training_step(model, x, y, "auto")
        pid = T._process.proc.pid
    np.testing.assert_array_equal(a, thread_a)
    assert loss == thread_loss
    for g, ref in zip(grads, thread_grads, strict=True):
        assert set(g) == set(ref)
        for k in g:
            assert g[k].dtype == np.float32
            np.testing.assert_array_equal(g[k], ref[k])
    # and the whole batch's step in one process, to float32 rounding
    ref_a, ref_loss, ref_grads = T.training_step(model, x, y, "im2col")
    assert _rel(a, ref_a) < 1e-5 and abs(loss - ref_loss) < 1e-5 * ref_loss
    for g, ref in zip(grads, ref_grads, strict=True):
        for k in g:
            assert _rel(g[k], ref[k]) < 1e-4, k
    # the worker is kept for the next loop of the same network, algorithm and batch size
    with T.two_cores(model, "auto", 16, threads=2):
        assert T._process.proc.pid == pid


def test_the_worker_reads_the_weights_of_every_step():
    """The parent's optimizer changes its weights in place; the worker's half must see them."""
    model = _model(T.LENET_SPEC)
    x, y = _batch(8, 3)
    with T.two_cores(model, "auto", 8, threads=2):
        before = T.training_step(model, x, y, "auto")
        for p in model.params:
            for k in p:
                p[k] *= np.float32(0.5)
        after = T.training_step(model, x, y, "auto")
    expected = T.training_step(model, x, y, "im2col")
    assert _rel(after[0][4:], expected[0][4:]) < 1e-5  # the worker's half
    assert not np.allclose(after[0][4:], before[0][4:])


def test_training_with_a_worker_repeats_bit_for_bit_and_ends_it():
    x, y = _batch(64, 10)
    runs = []
    for _ in range(2):
        with T.two_cores(Network.from_spec(T.LENET_SPEC), "auto", 16, threads=2):
            pass  # a worker is started (then kept, as a benchmark's blocks keep it)
        assert stepworker._workers
        procs = [w.proc for w in stepworker._workers.values()]
        model, hist = T.train(
            Network.from_spec(T.LENET_SPEC, seed=3),
            x,
            y,
            epochs=2,
            batch_size=16,
            augmentation=False,
            conv_algorithm="auto",
            progress=False,
        )
        assert not stepworker._workers  # train() ends its worker
        assert all(p.poll() is not None for p in procs)
        runs.append((model, hist))
    assert runs[0][1] == runs[1][1]
    for p, q in zip(runs[0][0].params, runs[1][0].params, strict=True):
        for k in p:
            np.testing.assert_array_equal(p[k], q[k])


def test_im2col_batch_norm_and_one_thread_never_start_a_worker():
    lenet = Network.from_spec(T.LENET_SPEC)
    for algorithm, threads in (("im2col", 2), ("auto", 1)):
        with T.two_cores(lenet, algorithm, 16, threads=threads):
            assert T._process is None
    with_bn = Network.from_spec(T.LENET_SPEC)
    T.batchnorm.add_batchnorm(with_bn)
    with T.two_cores(with_bn, "auto", 16, threads=2):
        assert T._process is None
    assert not stepworker._workers


def test_a_failing_half_raises_in_the_parent_and_the_worker_goes_on():
    model = _model(T.LENET_SPEC)
    worker = stepworker.worker_for(model.spec, "auto", 4)
    x, y = _batch(4, 1)
    with pytest.raises(ValueError, match="1..4"):
        worker.start(model.params, np.concatenate([x, x]), np.concatenate([y, y]))
    worker.start(model.params, x, np.array([0, 1, 2, 99]))  # a class the network lacks
    with pytest.raises(RuntimeError, match="training worker: SpecError: target class"):
        worker.finish()
    worker.start(model.params, x, y)
    a, loss, _ = worker.finish()
    assert a.shape == (4, 10) and np.isfinite(loss)


def test_a_dead_worker_is_a_clear_error_and_is_replaced():
    model = _model(T.LENET_SPEC)
    worker = stepworker.worker_for(model.spec, "auto", 4)
    worker.proc.kill()
    worker.proc.wait()
    x, y = _batch(4, 1)
    with pytest.raises(RuntimeError, match="training worker process ended .exit code -9"):
        worker.start(model.params, x, y)
        worker.finish()
    fresh = stepworker.worker_for(model.spec, "auto", 4)
    assert fresh is not worker
    fresh.start(model.params, x, y)
    assert fresh.finish()[0].shape == (4, 10)


def test_the_shared_file_is_gone_once_the_worker_has_it():
    before = set(os.listdir(stepworker._shm_dir() or "/tmp"))
    stepworker.worker_for(Network.from_spec(T.LENET_SPEC).spec, "auto", 4)
    after = set(os.listdir(stepworker._shm_dir() or "/tmp"))
    assert not [f for f in after - before if f.startswith("cnnviz-step-")]


def test_the_worker_ends_when_its_parent_dies_without_closing_it():
    code = textwrap.dedent(
        """
        import os, sys
        from cnncore import Network, stepworker, train
        w = stepworker.worker_for(Network.from_spec(train.LENET_SPEC).spec, "auto", 4)
        print(w.proc.pid, flush=True)
        os._exit(0)  # no atexit, no close(): the worker's input closes with this process
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    pid = int(out.stdout.split()[0])
    for _ in range(200):  # it exits at once; wait up to 20 s on a loaded machine
        if not _alive(pid):
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"worker {pid} outlived its parent")


def _alive(pid: int) -> bool:
    """A zombie (ended, not yet reaped by init) counts as ended."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return not f.read().split(") ")[-1].startswith("Z")
    except FileNotFoundError:
        return False


def _workers_marked(mark: str) -> list[int]:
    """Live worker processes whose environment carries `mark` (inherited from a CLI run)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if (
            b"cnncore.stepworker" in cmdline
            and mark.encode() in environ
            and _alive(int(entry.name))
        ):
            pids.append(int(entry.name))
    return pids


LENET_FILE_SPEC = json.dumps(T.LENET_SPEC)


def _cli(tmp_path, mark, *args):
    spec = tmp_path / "lenet.json"
    spec.write_text(LENET_FILE_SPEC)
    env = dict(os.environ, CNNVIZ_TEST_MARK=mark, OPENBLAS_NUM_THREADS="2")
    cmd = [sys.executable, "-m", "app.cli", "train", "--spec", str(spec), "--no-test", *args]
    return subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a test run started in the background (CI, nohup) ignores SIGINT, and so would this
        # child: Python installs its Ctrl-C handler only where SIGINT is not ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def test_cnnviz_train_with_two_threads_uses_a_worker_and_leaves_none(tmp_path):
    out = tmp_path / "m"
    proc = _cli(
        tmp_path,
        "run-" + out.name,
        "--epochs",
        "2",
        "--limit",
        "640",
        "--keep-best",
        "--out",
        str(out),
    )
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert "img/s" in stderr and "dev " in stdout
    assert "2 epochs of batches of 64, --conv-algorithm auto, two processes" in stderr
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["training"]["keep_best"] is True
    history = meta["training"]["history"]
    kept = [row for row in history if row.get("kept")]
    assert len(kept) == 1 and kept[0]["val_accuracy"] == max(r["val_accuracy"] for r in history)
    assert meta["dev_accuracy"] == kept[0]["val_accuracy"]
    assert not _workers_marked("run-" + out.name)


def test_ctrl_c_stops_cnnviz_train_cleanly(tmp_path):
    mark = f"sigint-{os.getpid()}"
    proc = _cli(tmp_path, mark, "--epochs", "50", "--limit", "6400", "--out", str(tmp_path / "m"))
    seen = ""
    while "img/s" not in seen:  # the first progress line: the loop (and its worker) runs
        char = proc.stderr.read(1)
        assert char, "cnnviz train ended before its first progress line"
        seen += char
    assert _workers_marked(mark)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted: no model written" in stderr and "Traceback" not in seen + stderr
    assert not (tmp_path / "m.json").exists()
    for _ in range(100):
        if not _workers_marked(mark):
            break
        time.sleep(0.1)
    else:
        pytest.fail("the worker outlived an interrupted cnnviz train")


def test_the_worker_reports_its_cpu_time():
    """bench_train.py adds it to the engine's CPU time (the worker's imports alone take some)."""
    worker = stepworker.worker_for(Network.from_spec(T.LENET_SPEC).spec, "auto", 4)
    assert worker.cpu_seconds() > 0
