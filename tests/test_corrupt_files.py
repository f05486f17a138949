"""Byte-level corruption of valid dataset files, as a disk, a download or an adversary would leave them: every case
loads into well-formed data or raises ``DatasetError`` naming the file, never h5py's, numpy's, zipfile's or Minari's
own exception."""

import io
import os
import shutil

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sb3_generative import DatasetError, load_offline_data
from sb3_generative.demo import make_minari_dataset, pendulum_episodes

CORRUPT_ID = "sb3gen-test/pendulum/corrupt-v0"


def d4rl_arrays(n: int = 40) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    arrays = {
        "observations": rng.normal(size=(n, 3)).astype(np.float32),
        "actions": rng.uniform(-1, 1, (n, 1)).astype(np.float32),
        "rewards": rng.normal(size=n).astype(np.float32),
        "next_observations": rng.normal(size=(n, 3)).astype(np.float32),
        "terminals": np.zeros(n, bool),
        "timeouts": np.zeros(n, bool),
    }
    arrays["terminals"][15], arrays["timeouts"][30] = True, True
    return arrays


def hdf5_bytes(compression: str | None) -> bytes:
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as file:
        for key, value in d4rl_arrays().items():
            file.create_dataset(key, data=value, compression=compression)
    return buffer.getvalue()


def npz_bytes(compressed: bool) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **d4rl_arrays())
    return buffer.getvalue()


def corrupt(raw: bytes, flips: list[tuple[int, int]], cut: int) -> bytes:
    """``raw`` with each (position, mask) byte XOR-ed and, when ``cut`` > 0, that many bytes cut off its end."""
    data = bytearray(raw)
    for position, mask in flips:
        data[position % len(data)] ^= mask
    return bytes(data[: len(data) - cut] if cut else data)


corruptions = {
    "flips": st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(1, 255)), min_size=0, max_size=4),
    "cut": st.one_of(st.just(0), st.integers(1, 4000)),
}


def check_loaded_or_refused(path: str, name: str | None = None) -> None:
    """``load_offline_data(path)`` gives well-formed data, or a ``DatasetError`` whose message names ``name``."""
    try:
        data = load_offline_data(path)
    except DatasetError as error:
        assert (name or path) in str(error), f"the error does not name the file: {error}"
        return
    assert len(data) > 0 and data.observations.shape == data.next_observations.shape
    assert data.actions.shape[0] == data.rewards.shape[0] == data.terminations.shape[0] == len(data)
    assert np.isfinite(data.observations).all() and np.isfinite(data.rewards).all() and np.isfinite(data.actions).all()


@pytest.mark.parametrize("compression", [None, "gzip"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(**corruptions)
def test_a_corrupted_hdf5_file_loads_or_raises_dataset_error(compression, flips, cut, tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("hdf5") / "data.hdf5"
    path.write_bytes(corrupt(hdf5_bytes(compression), flips, cut))
    check_loaded_or_refused(str(path))


@pytest.mark.parametrize("compressed", [False, True])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(**corruptions)
def test_a_corrupted_npz_file_loads_or_raises_dataset_error(compressed, flips, cut, tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("npz") / "data.npz"
    path.write_bytes(corrupt(npz_bytes(compressed), flips, cut))
    check_loaded_or_refused(str(path))


@pytest.fixture(scope="module")
def minari_files(minari_root: str) -> dict[str, bytes]:
    """A valid Minari dataset's two files, as bytes, by their path inside the dataset's folder."""
    make_minari_dataset(CORRUPT_ID, pendulum_episodes(3, length=20), ref_min_score=-1500.0, ref_max_score=-150.0)
    folder = os.path.join(minari_root, *CORRUPT_ID.split("/"))
    files = {}
    for relative in ("data/main_data.hdf5", "data/metadata.json"):
        with open(os.path.join(folder, relative), "rb") as file:
            files[relative] = file.read()
    return files


@pytest.mark.parametrize("relative", ["data/main_data.hdf5", "data/metadata.json"])
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(**corruptions)
def test_a_corrupted_minari_dataset_loads_or_raises_dataset_error(  # type: ignore[no-untyped-def]
    relative, flips, cut, minari_files, minari_root
) -> None:
    folder = os.path.join(minari_root, *CORRUPT_ID.split("/"))
    try:
        with open(os.path.join(folder, relative), "wb") as file:
            file.write(corrupt(minari_files[relative], flips, cut))
        check_loaded_or_refused(CORRUPT_ID)
    finally:
        for name, raw in minari_files.items():  # the next example starts from the valid dataset
            with open(os.path.join(folder, name), "wb") as file:
                file.write(raw)


def test_a_minari_dataset_without_its_data_file_names_it(minari_files, minari_root) -> None:  # type: ignore[no-untyped-def]
    folder = os.path.join(minari_root, *CORRUPT_ID.split("/"))
    moved = os.path.join(minari_root, "moved.hdf5")
    shutil.move(os.path.join(folder, "data", "main_data.hdf5"), moved)
    try:
        with pytest.raises(DatasetError, match=CORRUPT_ID):
            load_offline_data(CORRUPT_ID)
    finally:
        shutil.move(moved, os.path.join(folder, "data", "main_data.hdf5"))
