"""SB3's save / load tests (``test_save_load.py`` in SB3), for both algorithms."""

import io
import warnings
import zipfile

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.env_util import make_vec_env

from sb3_generative import GMPG, GMPO, DatasetError
from tests.helpers import ALGOS, TINY, make_model, tiny

OPTIMIZERS = {"policy.optimizer.pth", "policy.critic.optimizer.pth", "policy.bc_optimizer.pth"}


@pytest.fixture(params=ALGOS, ids=lambda cls: cls.__name__)
def trained(request, pendulum_id: str):  # type: ignore[no-untyped-def]
    return make_model(request.param, pendulum_id).learn(10)


def observations(n: int) -> np.ndarray:
    return np.stack([gym.make("Pendulum-v1").reset(seed=s)[0] for s in range(n)])


def test_save_load(trained, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cls, obs = type(trained), observations(5)
    before, _ = trained.predict(obs, deterministic=True)
    params = trained.get_parameters()
    trained.save(tmp_path / "model.zip")
    with zipfile.ZipFile(tmp_path / "model.zip") as archive:
        names, data = archive.namelist(), archive.read("data").decode()
    assert {"policy.pth", *OPTIMIZERS} <= set(names)
    assert "replay_buffer" not in data and len(data) < 30_000  # the dataset never goes into the zip
    loaded = cls.load(tmp_path / "model.zip", device="cpu")
    np.testing.assert_array_equal(before, loaded.predict(obs, deterministic=True)[0])
    loaded_params = loaded.get_parameters()
    assert loaded_params.keys() == params.keys()  # every optimizer comes back
    for key, state in loaded_params["policy"].items():
        assert th.equal(state, params["policy"][key]), key
    assert loaded.reward_scale == trained.reward_scale and loaded.critic_steps_done == TINY["critic_steps"]
    loaded.learn(2)  # the dataset is re-opened from its Minari id
    assert loaded.critic_steps_done == TINY["critic_steps"]  # the critic is not trained again


def test_hyperparameters_survive_load_without_reconfiguration(pendulum_id: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    for cls in ALGOS:
        model = make_model(cls, pendulum_id, critic_learning_rate=1e-3, gamma=0.9, tau=0.01, expectile=0.8)
        model.save(tmp_path / cls.__name__)
        loaded = cls.load(tmp_path / cls.__name__)
        assert loaded.critic.optimizer.param_groups[0]["lr"] == 1e-3
        assert (loaded.gamma, loaded.tau, loaded.expectile) == (0.9, 0.01, 0.8)


@pytest.mark.parametrize("cls", ALGOS)
def test_critic_optimizer_follows_optimizer_class(cls, pendulum_id: str) -> None:  # type: ignore[no-untyped-def]
    policy_kwargs = {**TINY["policy_kwargs"], "optimizer_class": th.optim.RMSprop, "optimizer_kwargs": dict(alpha=0.9)}
    model = make_model(cls, pendulum_id, policy_kwargs=policy_kwargs)
    for optimizer in (model.policy.optimizer, model.critic.optimizer, model.policy.bc_optimizer):
        assert isinstance(optimizer, th.optim.RMSprop) and optimizer.defaults["alpha"] == 0.9
    model.learn(2)


def test_load_with_dataset_and_continue(trained, pendulum_id: str, d4rl_arrays, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cls = type(trained)
    trained.save(tmp_path / "model")
    loaded = cls.load(tmp_path / "model", env=make_vec_env("Pendulum-v1"), dataset=pendulum_id)
    loaded.learn(3, reset_num_timesteps=False)
    assert loaded.num_timesteps == 13
    with pytest.raises(DatasetError, match="Observation shape mismatch"):
        loaded.set_dataset(d4rl_arrays)


@pytest.mark.parametrize("cls", ALGOS)
def test_model_without_dataset_explains_how_to_attach_one(cls, d4rl_arrays, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cls("GenerativePolicy", None, dataset=d4rl_arrays, **tiny(cls)).save(tmp_path / "arrays")
    loaded = cls.load(tmp_path / "arrays")
    with pytest.raises(DatasetError, match="No dataset is attached"):
        loaded.learn(1)


def test_set_parameters_rejects_bad_names(trained) -> None:  # type: ignore[no-untyped-def]
    params = trained.get_parameters()
    with pytest.raises(ValueError):
        trained.set_parameters({"not_a_module": {}}, exact_match=False)
    del params["policy.critic.optimizer"]
    with pytest.raises(ValueError):
        trained.set_parameters(params, exact_match=True)


def test_set_parameters_with_any_object_missing_raises_as_sb3_does(trained) -> None:  # type: ignore[no-untyped-def]
    """SB3's ``test_save_load`` drops saved objects from ``get_parameters()``: with ``exact_match`` each is a
    ``ValueError`` (the behaviour-cloning optimizer too: only an older file may lack it), without it the rest loads;
    an unknown object or a misspelt parameter is refused either way."""
    params = trained.get_parameters()
    assert set(params) == {"policy", "policy.optimizer", "policy.critic.optimizer", "policy.bc_optimizer"}
    for name in params:
        rest = {key: value for key, value in params.items() if key != name}
        with pytest.raises(ValueError, match="do not match"):
            trained.set_parameters(rest, exact_match=True)
        trained.set_parameters(rest, exact_match=False)
    with pytest.raises(ValueError, match="invalid object name"):
        trained.set_parameters({**params, "policy.no_such_module": {}}, exact_match=True)
    misspelt = {**params, "policy": {**params["policy"], "not_a_parameter": th.zeros(1)}}
    with pytest.raises(RuntimeError, match="not_a_parameter"):  # torch's strict load_state_dict, as in SB3
        trained.set_parameters(misspelt, exact_match=True)
    trained.set_parameters(params, exact_match=True)


def test_exclude_include_saved_params(trained, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cls = type(trained)
    trained.verbose = 2
    trained.save(tmp_path / "excluded", exclude=["verbose"])
    assert cls.load(tmp_path / "excluded").verbose == 0
    trained.save(tmp_path / "included", exclude=["verbose"], include=["verbose"])
    assert cls.load(tmp_path / "included").verbose == 2


def test_policy_save_load(trained, tmp_path) -> None:  # type: ignore[no-untyped-def]
    obs = observations(3)
    trained.policy.save(tmp_path / "policy.pth")
    policy = type(trained.policy).load(tmp_path / "policy.pth")
    assert type(policy) is type(trained.policy)
    np.testing.assert_array_equal(policy.predict(obs, deterministic=True)[0], trained.predict(obs, deterministic=True)[0])
    if isinstance(trained, GMPG):  # mu comes back too
        assert th.equal(policy.reference.net.last.weight, trained.policy.reference.net.last.weight)


def test_save_to_buffer(trained) -> None:  # type: ignore[no-untyped-def]
    buffer = io.BytesIO()
    trained.save(buffer)
    buffer.seek(0)
    loaded = type(trained).load(buffer)
    assert loaded.num_timesteps == trained.num_timesteps == 10


def test_replay_buffer_of_an_offline_model_is_not_saved(trained, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.warns(UserWarning, match="replay buffer is its dataset.*nothing was written"):
        trained.save_replay_buffer(tmp_path / "buffer.pkl")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once only
        trained.save_replay_buffer(tmp_path / "buffer.pkl")
    assert not (tmp_path / "buffer.pkl").exists()
    with pytest.raises(DatasetError, match="set_dataset"):
        trained.load_replay_buffer(tmp_path / "buffer.pkl")


@pytest.mark.parametrize("safe", [False, True])
def test_gmpo_file_saved_before_behaviour_cloning_moved_to_the_base_loads(pendulum_id: str, tmp_path, safe) -> None:  # type: ignore[no-untyped-def]
    """Files of the earlier GMPO have no behaviour-cloning optimizer: they load, predict as saved and train on."""
    model = make_model(GMPO, pendulum_id).learn(3)
    model.save(tmp_path / "new.zip")
    with zipfile.ZipFile(tmp_path / "new.zip") as new, zipfile.ZipFile(tmp_path / "old.zip", "w") as old:
        for name in new.namelist():
            if name != "policy.bc_optimizer.pth":
                old.writestr(name, new.read(name))
    obs = observations(4)
    loaded = GMPO.load(tmp_path / "old.zip", device="cpu", safe=safe)
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])
    assert not loaded.policy.bc_optimizer.state
    if not safe:
        loaded.learn(2, reset_num_timesteps=False)
        assert loaded.num_timesteps == 5
    incomplete = {k: v for k, v in model.get_parameters().items() if k != "policy.optimizer"}
    with pytest.raises(ValueError, match=r"policy\.optimizer"):  # only the behaviour-cloning optimizer may be missing
        loaded.set_parameters(incomplete)
