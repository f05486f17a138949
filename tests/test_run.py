"""SB3's run and environment tests (``test_run.py``, ``test_vec_envs.py`` in SB3), for both algorithms."""

import gymnasium as gym
import pytest
from stable_baselines3.common.callbacks import EvalCallback
from stable_baselines3.common.env_util import make_vec_env

from tests.helpers import ALGOS, TINY, TINY_POLICY, make_model, tiny


@pytest.mark.parametrize("cls", ALGOS)
@pytest.mark.parametrize("generative_model", ["gvp", "vpsde", "icfm"])
def test_run_with_progress_bar(cls, pendulum_id: str, generative_model: str) -> None:  # type: ignore[no-untyped-def]
    model = make_model(cls, pendulum_id, policy_kwargs={**TINY_POLICY, "generative_model": generative_model})
    model.learn(6, progress_bar=True)
    assert model.num_timesteps == 6 and model.critic_steps_done == TINY["critic_steps"]
    assert model._n_updates == 6
    assert model.actor.path.__class__.__name__.lower().startswith(generative_model[:2])


@pytest.mark.parametrize("cls", ALGOS)
def test_env_recovered_from_minari_dataset(cls, pendulum_id: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = make_model(cls, pendulum_id, env=None)
    assert model.get_env() is not None
    assert model.action_space == gym.make("Pendulum-v1").action_space
    callback = EvalCallback(make_vec_env("Pendulum-v1"), eval_freq=3, n_eval_episodes=1, log_path=str(tmp_path))
    model.learn(3, callback=callback)
    assert callback.n_calls == 3 and len(callback.evaluations_results) == 1


@pytest.mark.parametrize("cls", ALGOS)
def test_spaces_from_arrays_without_env(cls, d4rl_arrays) -> None:  # type: ignore[no-untyped-def]
    model = cls("MlpPolicy", None, dataset=d4rl_arrays, **tiny(cls)).learn(2)
    assert model.env is None
    assert model.observation_space.shape == (4,) and model.action_space.shape == (1,)
    action, _ = model.predict(d4rl_arrays["observations"][0], deterministic=True)
    assert action.shape == (1,)


@pytest.mark.parametrize("cls", ALGOS)
def test_needs_env_or_dataset(cls) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="needs an env or a dataset"):
        cls("GenerativePolicy", None)


@pytest.mark.parametrize("cls", ALGOS)
def test_env_with_several_copies_is_accepted(cls, pendulum_id: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The env only evaluates: a VecEnv of 2 is fine, and evaluation callbacks use both copies."""
    vec_env = make_vec_env("Pendulum-v1", n_envs=2)
    model = make_model(cls, pendulum_id, env=vec_env)
    assert model.n_envs == 2 and model.get_env() is vec_env
    callback = EvalCallback(vec_env, eval_freq=2, n_eval_episodes=2, log_path=str(tmp_path))
    model.learn(2, callback=callback)
    assert len(callback.evaluations_results[0]) == 2


@pytest.mark.parametrize("cls", ALGOS)
def test_data_is_loaded_and_checked_once(cls, d4rl_arrays, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import sb3_generative.common.datasets as datasets
    import sb3_generative.common.offline_algorithm as offline

    calls: dict[str, int] = {"scan": 0, "spaces": 0}

    def counting(name: str, function):  # type: ignore[no-untyped-def]
        def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
            calls[name] += 1
            return function(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(datasets, "check_finite_and_nonempty", counting("scan", datasets.check_finite_and_nonempty))
    monkeypatch.setattr(offline, "check_supported_spaces", counting("spaces", offline.check_supported_spaces))
    cls("GenerativePolicy", None, dataset=d4rl_arrays, **tiny(cls)).learn(1)
    assert calls == {"scan": 1, "spaces": 1}
