"""Model zips nobody should trust: checked as data, loaded safely, never asked to download or re-open data."""

import base64
import json
import os
import pickle
import zipfile

import numpy as np
import pytest
import torch as th

from sb3_generative import GMPG, GMPO
from sb3_generative.common.guard import NonFiniteError
from sb3_generative.common.model_files import DESCRIPTION, ModelFileError
from tests.helpers import ALGOS, make_model


class Marker:
    """A pickle that, when loaded, creates a file: what a crafted model zip could run."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (self.path, "w"))


def rewrite(path, member: str, content: bytes | None) -> None:  # type: ignore[no-untyped-def]
    """Replace (or, with None, drop) one member of a zip."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    if content is None:
        members.pop(member)
    else:
        members[member] = content
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def plant_payload(path, marker: str) -> None:  # type: ignore[no-untyped-def]
    """Put a pickled payload into the zip's SB3 data, where plain SB3 loading unpickles it."""
    with zipfile.ZipFile(path) as archive:
        data = json.loads(archive.read("data"))
    data["policy_class"][":serialized:"] = base64.b64encode(pickle.dumps(Marker(marker))).decode()
    rewrite(path, "data", json.dumps(data).encode())


@pytest.fixture(params=ALGOS, ids=lambda cls: cls.__name__)
def saved(request, pendulum_id: str, tmp_path):  # type: ignore[no-untyped-def]
    model = make_model(request.param, pendulum_id).learn(3)
    model.save(tmp_path / "model.zip")
    return model, tmp_path / "model.zip"


def test_safe_load_predicts_like_the_model_and_runs_nothing(saved, tmp_path) -> None:  # type: ignore[no-untyped-def]
    model, path = saved
    cls, obs = type(model), np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    marker = str(tmp_path / "ran")
    plant_payload(path, marker)
    loaded = cls.load(path, safe=True)
    assert not os.path.exists(marker)
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])
    for key, value in model.policy.state_dict().items():
        assert th.equal(value, loaded.policy.state_dict()[key]), key
    assert loaded.reward_scale == model.reward_scale and loaded.num_timesteps == 3
    assert loaded.dataset_source is None  # a file you did not make never decides what is read
    with pytest.raises(Exception, match="No dataset is attached"):
        loaded.learn(1)
    with pytest.raises(Exception):  # noqa: B017 - what plain load trusts: the payload runs (proves the plant works)
        cls.load(path)
    assert os.path.exists(marker)


def test_critic_from_a_file_reads_weights_only(saved, pendulum_id: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    model, path = saved
    marker = str(tmp_path / "ran")
    plant_payload(path, marker)
    other = make_model(GMPO, pendulum_id, critic=str(path), seed=1)
    assert not os.path.exists(marker)
    assert th.equal(other.critic.value_func._fc.weight, model.critic.value_func._fc.weight)
    with pytest.raises(ValueError, match="reward scale"):
        make_model(GMPO, pendulum_id, critic=str(path), normalize_reward=False)


def test_the_file_never_decides_to_download(pendulum_id: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    make_model(GMPO, pendulum_id, download=True).save(tmp_path / "model")
    assert GMPO.load(tmp_path / "model").download is False
    assert GMPO.load(tmp_path / "model", download=True).download is True  # the user may


@pytest.mark.parametrize(
    "damage,match",
    [
        ("truncate", "truncated|corrupt"),
        ("no_data", "has no 'data' member"),
        ("half_json", "half-written or corrupt JSON in 'data'"),
        ("half_description", f"half-written or corrupt JSON in '{DESCRIPTION}'"),
        ("not_a_zip", "not a zip archive"),
    ],
)
def test_broken_zips_raise_a_named_error(saved, damage: str, match: str) -> None:  # type: ignore[no-untyped-def]
    model, path = saved
    raw = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "no_data":
        rewrite(path, "data", None)
    elif damage == "half_json":
        rewrite(path, "data", b'{"policy_class": {":type:"')
    elif damage == "half_description":
        rewrite(path, DESCRIPTION, b'{"algorithm": ')
    else:
        path.write_bytes(b"not a zip at all")
    for safe in (False, True):
        with pytest.raises(ModelFileError, match=match):
            type(model).load(path, safe=safe)


def test_a_zip_of_another_algorithm_is_named(pendulum_id: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from stable_baselines3 import SAC

    SAC("MlpPolicy", "Pendulum-v1").save(tmp_path / "sac")
    with pytest.raises(ModelFileError, match=r"another algorithm.*stable_baselines3\.sac"):
        GMPO.load(tmp_path / "sac")
    make_model(GMPG, pendulum_id).save(tmp_path / "gmpg")
    with pytest.raises(ModelFileError, match=r"saved by GMPG, not GMPO: load it with GMPG\.load"):
        GMPO.load(tmp_path / "gmpg")


def test_save_refuses_non_finite_parameters(pendulum_id: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = make_model(GMPO, pendulum_id)
    model.save(tmp_path / "good")
    with th.no_grad():
        model.actor.net.last.weight[0, 0] = float("nan")
    with pytest.raises(NonFiniteError, match="not saved"):
        model.save(tmp_path / "good")
    assert all(th.isfinite(p).all() for p in GMPO.load(tmp_path / "good").policy.parameters())
    model.save(tmp_path / "broken", allow_non_finite=True)
    assert (tmp_path / "broken.zip").exists()


def test_stale_temporary_files_are_removed_and_bad_paths_fail_cleanly(pendulum_id: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = make_model(GMPO, pendulum_id)
    stale = tmp_path / ".model.zip.999999999.tmp.zip"  # left by a save killed mid-way (no such process)
    stale.write_bytes(b"PK half")
    model.save(tmp_path / "model")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.zip"]
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(OSError):
        model.save(tmp_path / "a_file" / "model.zip")
    with pytest.raises(OSError):
        model.save("/proc/model.zip")  # a folder nobody can write in
