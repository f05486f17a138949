"""SB3's generic algorithm tests (reference/sb3.md, "Generic SB3 tests"), adapted to an offline algorithm."""

import io
import os
import time
import zipfile

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.callbacks import (
    CallbackList,
    CheckpointCallback,
    EvalCallback,
    EveryNTimesteps,
    StopTrainingOnNoModelImprovement,
)
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import configure

from sb3_generative import GMPO, DatasetError, GenerativeActorPolicy
from tests.conftest import TINY, TINY_POLICY


def make_model(pendulum_id: str, **kwargs) -> GMPO:  # type: ignore[no-untyped-def]
    params = {**TINY, "seed": 0, "device": "cpu", **kwargs}
    return GMPO("GenerativePolicy", kwargs.pop("env", "Pendulum-v1"), dataset=pendulum_id, **params)


@pytest.fixture()
def trained(pendulum_id: str) -> GMPO:
    return make_model(pendulum_id).learn(30)


# ---------------------------------------------------------------------------------------------------- run, env
@pytest.mark.parametrize("generative_model", ["gvp", "vpsde", "icfm"])
def test_run_with_progress_bar(pendulum_id: str, generative_model: str) -> None:
    policy_kwargs = {**TINY_POLICY, "generative_model": generative_model}
    model = make_model(pendulum_id, policy_kwargs=policy_kwargs)
    model.learn(20, progress_bar=True)
    assert model.num_timesteps == 20 and model.critic_steps_done == TINY["critic_steps"]
    assert model._n_updates == 20


def test_env_recovered_from_minari_dataset(pendulum_id: str) -> None:
    model = GMPO("GenerativePolicy", None, dataset=pendulum_id, **TINY)
    assert model.get_env() is not None
    assert model.action_space == gym.make("Pendulum-v1").action_space
    model.learn(5, callback=EvalCallback(make_vec_env("Pendulum-v1"), eval_freq=5, n_eval_episodes=1))


def test_spaces_from_arrays_without_env(d4rl_arrays) -> None:  # type: ignore[no-untyped-def]
    model = GMPO("MlpPolicy", None, dataset=d4rl_arrays, **TINY).learn(5)
    assert model.env is None
    assert model.observation_space.shape == (4,) and model.action_space.shape == (1,)
    action, _ = model.predict(d4rl_arrays["observations"][0], deterministic=True)
    assert action.shape == (1,)


def test_needs_env_or_dataset() -> None:
    with pytest.raises(ValueError, match="needs an env or a dataset"):
        GMPO("GenerativePolicy", None)


# ---------------------------------------------------------------------------------------------------- predict
def test_predict_shapes_bounds_and_determinism(trained: GMPO) -> None:
    env = gym.make("Pendulum-v1")
    obs, _ = env.reset(seed=0)
    action, state = trained.predict(obs, deterministic=True)
    assert action.shape == env.action_space.shape and env.action_space.contains(action) and state is None
    again, _ = trained.predict(obs, deterministic=True)
    np.testing.assert_array_equal(action, again)
    vec_env = make_vec_env("Pendulum-v1", n_envs=2)
    batch, _ = trained.predict(vec_env.reset(), deterministic=True)
    assert batch.shape == (2, 1) and np.all(np.abs(batch) <= 2.0)
    stochastic = np.stack([trained.predict(obs, deterministic=False)[0] for _ in range(10)])
    assert np.unique(stochastic).size > 1  # noise drawn from N(0, I)


def test_mixing_gym_and_vecenv_api_raises(trained: GMPO) -> None:
    with pytest.raises(ValueError, match="mixing Gym API"):
        trained.predict(gym.make("Pendulum-v1").reset())


def test_evaluate_policy_model_and_bare_policy(trained: GMPO) -> None:
    env = make_vec_env("Pendulum-v1", n_envs=2)
    for predictor in (trained, trained.policy):
        mean, _ = evaluate_policy(predictor, env, n_eval_episodes=2)
        assert -2000 < mean <= 0


# ---------------------------------------------------------------------------------------------------- save / load
def test_save_load(trained: GMPO, pendulum_id: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    obs = np.stack([gym.make("Pendulum-v1").reset(seed=s)[0] for s in range(5)])
    before, _ = trained.predict(obs, deterministic=True)
    params = trained.get_parameters()
    trained.save(tmp_path / "model.zip")
    with zipfile.ZipFile(tmp_path / "model.zip") as archive:
        names = archive.namelist()
        data = archive.read("data").decode()
    assert {"policy.pth", "policy.optimizer.pth", "policy.critic.optimizer.pth"} <= set(names)
    assert "replay_buffer" not in data and len(data) < 30_000  # the dataset never goes into the zip
    loaded = GMPO.load(tmp_path / "model.zip", device="cpu")
    after, _ = loaded.predict(obs, deterministic=True)
    np.testing.assert_array_equal(before, after)
    for key, state in loaded.get_parameters()["policy"].items():
        assert th.equal(state, params["policy"][key]), key
    assert loaded.reward_scale == trained.reward_scale and loaded.critic_steps_done == TINY["critic_steps"]
    loaded.learn(5)  # the dataset is re-opened from its Minari id
    assert loaded.critic_steps_done == TINY["critic_steps"]  # the critic is not trained again


def test_load_with_dataset_and_continue(trained: GMPO, pendulum_id: str, d4rl_arrays, tmp_path) -> None:  # type: ignore[no-untyped-def]
    trained.save(tmp_path / "model")
    loaded = GMPO.load(tmp_path / "model", env=make_vec_env("Pendulum-v1"), dataset=pendulum_id)
    loaded.learn(5, reset_num_timesteps=False)
    assert loaded.num_timesteps == 35
    with pytest.raises(DatasetError, match="Observation shape mismatch"):
        loaded.set_dataset(d4rl_arrays)


def test_model_without_dataset_explains_how_to_attach_one(trained: GMPO, d4rl_arrays, tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = GMPO("GenerativePolicy", None, dataset=d4rl_arrays, **TINY)
    model.save(tmp_path / "arrays")
    loaded = GMPO.load(tmp_path / "arrays")
    with pytest.raises(DatasetError, match="No dataset is attached"):
        loaded.learn(1)


def test_set_parameters_rejects_bad_names(trained: GMPO) -> None:
    params = trained.get_parameters()
    with pytest.raises(ValueError):
        trained.set_parameters({"not_a_module": {}}, exact_match=False)
    del params["policy.critic.optimizer"]
    with pytest.raises(ValueError):
        trained.set_parameters(params, exact_match=True)


def test_exclude_include_saved_params(trained: GMPO, tmp_path) -> None:  # type: ignore[no-untyped-def]
    trained.verbose = 2
    trained.save(tmp_path / "excluded", exclude=["verbose"])
    assert GMPO.load(tmp_path / "excluded").verbose == 0
    trained.save(tmp_path / "included", exclude=["verbose"], include=["verbose"])
    assert GMPO.load(tmp_path / "included").verbose == 2


def test_policy_save_load(trained: GMPO, tmp_path) -> None:  # type: ignore[no-untyped-def]
    obs = np.stack([gym.make("Pendulum-v1").reset(seed=s)[0] for s in range(3)])
    trained.policy.save(tmp_path / "policy.pth")
    policy = GenerativeActorPolicy.load(tmp_path / "policy.pth")
    np.testing.assert_array_equal(policy.predict(obs, deterministic=True)[0], trained.predict(obs, deterministic=True)[0])


def test_save_to_buffer(trained: GMPO) -> None:
    buffer = io.BytesIO()
    trained.save(buffer)
    buffer.seek(0)
    assert GMPO.load(buffer).num_timesteps == trained.num_timesteps


# ---------------------------------------------------------------------------------------------------- determinism
def test_same_seed_same_training(pendulum_id: str) -> None:
    def run() -> tuple[dict, np.ndarray]:
        model = make_model(pendulum_id, seed=3).learn(15)
        obs = np.zeros((4, 3), dtype=np.float32)
        return model.policy.state_dict(), model.predict(obs, deterministic=False)[0]

    (state_a, act_a), (state_b, act_b) = run(), run()
    for key in state_a:
        assert th.equal(state_a[key], state_b[key]), key
    np.testing.assert_array_equal(act_a, act_b)
    state_c = make_model(pendulum_id, seed=4).learn(15).policy.state_dict()
    assert not th.equal(state_a["actor.net.last.weight"], state_c["actor.net.last.weight"])


# ---------------------------------------------------------------------------------------------------- callbacks
def test_callbacks(pendulum_id: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = make_model(pendulum_id)
    eval_cb = EvalCallback(
        make_vec_env("Pendulum-v1"),
        eval_freq=10,
        n_eval_episodes=1,
        log_path=str(tmp_path / "eval"),
        best_model_save_path=str(tmp_path / "best"),
        callback_after_eval=StopTrainingOnNoModelImprovement(100, min_evals=100),
    )
    checkpoint = CheckpointCallback(save_freq=10, save_path=str(tmp_path / "ckpt"))
    every = EveryNTimesteps(n_steps=10, callback=CheckpointCallback(save_freq=1, save_path=str(tmp_path / "every")))
    model.learn(30, callback=CallbackList([eval_cb, checkpoint, every]), progress_bar=True)
    evaluations = np.load(tmp_path / "eval" / "evaluations.npz")
    assert evaluations["timesteps"].tolist() == [10, 20, 30]  # frequencies count gradient steps
    assert sorted(os.listdir(tmp_path / "ckpt")) == [f"rl_model_{n}_steps.zip" for n in (10, 20, 30)]
    assert (tmp_path / "best" / "best_model.zip").exists()
    assert eval_cb.n_calls == model.num_timesteps == 30
    assert GMPO.load(tmp_path / "ckpt" / "rl_model_20_steps.zip").num_timesteps == 20


@pytest.mark.parametrize("stop_value", [False, np.bool_(0), th.tensor(False)])
def test_callbacks_can_cancel_runs(pendulum_id: str, stop_value) -> None:  # type: ignore[no-untyped-def]
    model = make_model(pendulum_id)
    model.learn(50, callback=lambda _locals, _globals: stop_value)
    assert model.num_timesteps == 1


# ---------------------------------------------------------------------------------------------------- logging
def test_logger_records_train_critic_and_time_keys(pendulum_id: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = make_model(pendulum_id)
    model.set_logger(configure(str(tmp_path / "log"), ["csv", "json"]))
    model.learn(20, log_interval=10)
    text = (tmp_path / "log" / "progress.json").read_text()
    for key in (
        "train/policy_loss",
        "train/weight_clamped_fraction",
        "train/reward_scale",
        "time/fps",
        "critic/q_loss",
        "critic/v_loss",
    ):
        assert key in text, key
    last = [line for line in text.splitlines() if "train/policy_loss" in line][-1]
    import json

    record = json.loads(last)
    assert record["time/total_timesteps"] == 20 and np.isfinite(record["train/policy_loss"])
    assert record["train/reward_scale"] == pytest.approx(model.reward_scale)


def test_tensorboard(pendulum_id: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("tensorboard")
    model = make_model(pendulum_id, tensorboard_log=str(tmp_path / "tb"))
    model.learn(10)
    model.learn(10, reset_num_timesteps=False)
    assert os.listdir(tmp_path / "tb") == ["GMPO_1"]


def test_fps_logger_no_division_by_zero(pendulum_id: str) -> None:
    model = make_model(pendulum_id)
    model.learn(1, log_interval=1)
    model.start_time = time.time_ns()
    model.dump_logs()


# ---------------------------------------------------------------------------------------------------- critic reuse
def test_critic_handed_to_another_model(trained: GMPO, pendulum_id: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    other = make_model(pendulum_id, critic=trained.critic, seed=1)
    assert other.critic_steps_done == other.critic_steps
    for key, value in trained.critic.state_dict().items():
        assert th.equal(value, other.critic.state_dict()[key]), key
    trained.save(tmp_path / "with_critic")
    from_file = make_model(pendulum_id, critic=str(tmp_path / "with_critic.zip"), seed=2)
    assert th.equal(from_file.critic.value_func._fc.weight, trained.critic.value_func._fc.weight)
    from_model = make_model(pendulum_id, critic=trained, seed=2)
    assert th.equal(from_model.critic.value_func._fc.weight, trained.critic.value_func._fc.weight)
    before = other.critic.state_dict()["q_funcs.0._fc.weight"].clone()
    other.learn(5)
    assert th.equal(before, other.critic.state_dict()["q_funcs.0._fc.weight"])  # frozen, not retrained


def test_critic_of_another_size_is_refused(trained: GMPO, pendulum_id: str) -> None:
    with pytest.raises(ValueError, match="does not fit"):
        make_model(pendulum_id, critic=trained.critic, policy_kwargs={**TINY_POLICY, "critic_net_arch": [8]})


def test_gmpo_weights_follow_the_advantage(trained: GMPO) -> None:
    """The loss weights are min(exp(beta A), clamp) of the frozen critic, without gradient."""
    batch = trained.replay_buffer.sample(64)
    obs = trained.policy.normalize_obs(batch.observations)
    advantage = trained.critic.advantage(obs, batch.actions)
    trained.beta, trained.weight_clamp = 2.0, 1.5
    th.manual_seed(0)
    loss, stats = trained.policy_loss(obs, batch.actions)
    th.manual_seed(0)
    matching = trained.actor.per_sample_loss(batch.actions, obs)
    expected = (th.exp(2.0 * advantage).clamp(max=1.5) * matching).mean()
    assert th.allclose(loss, expected)
    assert stats["weight_clamped_fraction"] == pytest.approx((th.exp(2.0 * advantage) > 1.5).float().mean().item())
    trained.critic.zero_grad(set_to_none=True)
    loss.backward()
    assert all(p.grad is None for p in trained.critic.parameters())  # weights carry no gradient


def test_optimizers_are_fused_unless_told_otherwise(pendulum_id: str) -> None:
    model = make_model(pendulum_id)
    assert model.policy.optimizer.defaults["fused"] and model.critic.optimizer.defaults["fused"]
    plain = make_model(pendulum_id, policy_kwargs={**TINY_POLICY, "optimizer_kwargs": dict(fused=False)})
    assert not plain.policy.optimizer.defaults["fused"]
    plain.learn(3)  # the user's choice trains, and is what a saved model rebuilds
    assert plain.policy.optimizer_kwargs == dict(fused=False)
