"""Data nobody should trust: strict flags, degenerate arrays, files that point elsewhere or lie about their size."""

import io
import zipfile

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sb3_generative import GMPO, DatasetError, OfflineData, load_offline_data, normalized_score
from tests.helpers import tiny

FLAG_KEYS = ["terminals", "timeouts", "terminations", "truncations"]


def arrays(n: int = 12, obs_dim: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "observations": rng.normal(size=(n, obs_dim)).astype(np.float32),
        "actions": rng.uniform(-1, 1, (n, 2)).astype(np.float32),
        "rewards": rng.normal(size=n).astype(np.float32),
        "next_observations": rng.normal(size=(n, obs_dim)).astype(np.float32),
    }


@pytest.mark.parametrize("key", FLAG_KEYS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, 2.0, -1.0, 0.5])
def test_flags_other_than_booleans_or_0_1_are_refused(key: str, bad: float) -> None:
    data = arrays()
    flags = np.zeros(12)
    flags[[4, 9]] = bad
    data[key] = flags
    with pytest.raises(DatasetError, match=rf"'{key}'.*booleans or exactly 0/1: 2 value\(s\).*first at index 4"):
        load_offline_data(data)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from([0.0, 1.0, 0.5, -1.0, 2.0, np.nan, np.inf]), min_size=12, max_size=12))
def test_flags_are_read_exactly_or_refused(values: list[float]) -> None:
    data = {**arrays(), "terminals": np.array(values)}
    valid = all(v in (0.0, 1.0) for v in values)
    if valid:
        loaded = load_offline_data(data)
        assert loaded.terminations.tolist() == (np.array(values) == 1.0).tolist()
    else:
        with pytest.raises(DatasetError, match="'terminals'"):
            load_offline_data(data)


@pytest.mark.parametrize("key", ["observations", "actions"])
def test_width_zero_is_refused(key: str) -> None:
    data = arrays()
    data[key] = np.zeros((12, 0), np.float32)
    with pytest.raises(DatasetError, match=f"'{key}'.*width 0"):
        load_offline_data(data)


def test_an_all_nan_column_is_refused() -> None:
    data = arrays()
    data["actions"][:, 1] = np.nan
    with pytest.raises(DatasetError, match="actions: 12 non-finite value"):
        load_offline_data(data)


def test_ragged_lists_are_refused() -> None:
    data = {**arrays(), "observations": [[0.0, 1.0, 2.0]] * 11 + [[0.0]]}
    with pytest.raises(DatasetError, match=r"'observations'.*ragged"):
        load_offline_data(data)


def test_offline_data_of_disagreeing_lengths_is_refused() -> None:
    data = load_offline_data(arrays())
    short = OfflineData(**{**data.__dict__, "rewards": data.rewards[:-2]})
    with pytest.raises(DatasetError, match="disagree in length"):
        load_offline_data(short)


def test_observation_statistics_that_overflow_float32_are_refused() -> None:
    data = arrays()
    data["observations"][:, 1] = np.float32(3e38) * np.array([1, -1] * 6, np.float32)  # variance 9e76
    with pytest.raises(DatasetError, match=r"overflow float32.*column 1"):
        GMPO("GenerativePolicy", None, dataset=data, normalize_observations=True, **tiny(GMPO))


def test_download_without_a_network_names_the_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DatasetError, match=r"Could not download Minari dataset 'nobody/nothing/here-v0'"):
        load_offline_data("nobody/nothing/here-v0", download=True)


def test_an_npy_renamed_npz_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "data.npz"
    with open(path, "wb") as file:
        np.save(file, np.zeros((4, 3)))
    with pytest.raises(DatasetError, match=r"\.npy file\?"):
        load_offline_data(str(path))


def test_an_npz_declaring_a_huge_array_is_refused_before_allocating(tmp_path) -> None:  # type: ignore[no-untyped-def]
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10**12, 3)})
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("observations.npy", b"\x93NUMPY\x01\x00" + header.getvalue()[8:] + b"\x00" * 64)
        for key, value in arrays().items():
            if key != "observations":
                buffer = io.BytesIO()
                np.save(buffer, value)
                archive.writestr(f"{key}.npy", buffer.getvalue())
    with pytest.raises(DatasetError, match=r"'observations.npy' declares shape \(1000000000000, 3\).*refused before"):
        load_offline_data(str(path))


def write_hdf5(path, **overrides) -> None:  # type: ignore[no-untyped-def]
    with h5py.File(path, "w") as file:
        for key, value in arrays().items():
            if key not in overrides:
                file.create_dataset(key, data=value)
        for key, make in overrides.items():
            make(file, key)


def test_hdf5_pointing_at_other_files_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as file:
        file.create_dataset("secret", data=np.ones((12, 3), np.float32))
    raw = tmp_path / "raw.bin"
    np.ones((12, 3), np.float32).tofile(raw)
    cases = {
        "external link": lambda f, k: f.__setitem__(k, h5py.ExternalLink(str(other), "secret")),
        "external storage": lambda f, k: f.create_dataset(k, shape=(12, 3), dtype="f4", external=[(str(raw), 0, 144)]),
        "virtual": lambda f, k: f.create_virtual_dataset(k, _layout(other)),
    }
    for name, make in cases.items():
        path = tmp_path / f"{name.replace(' ', '_')}.hdf5"
        write_hdf5(path, observations=make)
        with pytest.raises(DatasetError, match=r"external|virtual"):
            load_offline_data(str(path))


def _layout(other) -> h5py.VirtualLayout:  # type: ignore[no-untyped-def]
    layout = h5py.VirtualLayout(shape=(12, 3), dtype="f4")
    layout[:] = h5py.VirtualSource(str(other), "secret", shape=(12, 3))
    return layout


def test_hdf5_declaring_more_than_it_stores_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "sparse.hdf5"
    sparse = lambda f, k: f.create_dataset(k, shape=(10**9, 3), dtype="f4", chunks=(1024, 3))  # noqa: E731 - no chunk written
    write_hdf5(path, observations=sparse)
    with pytest.raises(DatasetError, match=r"'observations' declares shape \(1000000000, 3\).*refused before allocating"):
        load_offline_data(str(path))


def test_an_npz_using_zip_features_numpy_never_writes_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    buffer = io.BytesIO()
    np.savez(buffer, **arrays())
    raw = bytearray(buffer.getvalue())
    for signature, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # local and central headers: "encrypted"
        start = 0
        while (start := raw.find(signature, start)) >= 0:
            raw[start + flags_at] |= 0x01
            start += 4
    path = tmp_path / "encrypted.npz"
    path.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match=r"Cannot read .* as an \.npz archive"):
        load_offline_data(str(path))


@pytest.mark.parametrize("low, high", [(100.0, 100.0), (0.0, float("nan")), (float("-inf"), 1.0), ("a", 1.0)])
def test_normalized_score_refuses_references_that_give_no_score(low, high) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DatasetError, match="finite, distinct reference returns"):
        normalized_score([1.0, 2.0], ref_min_score=low, ref_max_score=high)


def test_array_datasets_keep_their_action_shape() -> None:
    """Actions stored as (N, 1, 2) give a (1, 2) action space without an env, so ``predict`` returns that shape."""
    rng = np.random.default_rng(0)
    n = 12
    arrays = {"observations": rng.normal(size=(n, 3)), "actions": rng.uniform(-1, 1, (n, 1, 2)), "rewards": np.ones(n)}
    data = load_offline_data(arrays)
    assert data.action_space.shape == (1, 2) and data.actions.shape[1:] == (2,)  # stored flat
    # beyond [-1, 1]: the bounds come from the data
    wide = {**arrays, "actions": rng.uniform(-3, 3, (n, 2, 2)).astype(np.float32)}
    with pytest.warns(UserWarning, match="inferred from the data"):
        space = load_offline_data(wide).action_space
    assert space.shape == (2, 2) and np.all(space.low <= wide["actions"].min(axis=0))
    assert load_offline_data({**arrays, "actions": rng.uniform(-1, 1, n)}).action_space.shape == (1,)
