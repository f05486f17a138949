"""SB3's predict tests (``test_predict.py`` in SB3), for both algorithms."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from tests.helpers import ALGOS, make_model


@pytest.fixture(scope="module", params=ALGOS, ids=lambda cls: cls.__name__)
def trained(request, pendulum_id: str):  # type: ignore[no-untyped-def]
    return make_model(request.param, pendulum_id).learn(10)


def test_predict_shapes_bounds_and_determinism(trained) -> None:  # type: ignore[no-untyped-def]
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


def test_deterministic_predict_integrates_from_zero_noise(trained) -> None:  # type: ignore[no-untyped-def]
    obs = np.zeros((3, 3), dtype=np.float32)
    action, _ = trained.predict(obs, deterministic=True)
    with th.no_grad():
        raw = trained.actor.sample(trained.policy.normalize_obs(th.as_tensor(obs)), noise=th.zeros(3, 1))
    np.testing.assert_allclose(action, trained.policy.unscale_action(raw.clamp(-1, 1).numpy()), rtol=1e-6)


def test_mixing_gym_and_vecenv_api_raises(trained) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="mixing Gym API"):
        trained.predict(gym.make("Pendulum-v1").reset())


def test_evaluate_policy_model_and_bare_policy(trained) -> None:  # type: ignore[no-untyped-def]
    env = make_vec_env("Pendulum-v1", n_envs=2)
    for predictor in (trained, trained.policy):
        mean, std = evaluate_policy(predictor, env, n_eval_episodes=2)
        assert -2000 < mean <= 0 and std >= 0


def test_evaluate_plays_episodes_per_seed_and_normalises(trained) -> None:  # type: ignore[no-untyped-def]
    from sb3_generative import evaluate

    result = evaluate(trained, "Pendulum-v1", n_eval_episodes=3, seeds=[0, 1])
    assert result.returns.shape == (2, 3) and result.scores is not None
    np.testing.assert_allclose(result.scores, 100 * (result.returns + 1500.0) / (1500.0 - 150.0))
    again = evaluate(trained, "Pendulum-v1", n_eval_episodes=3, seeds=[0, 1])
    np.testing.assert_array_equal(again.returns, result.returns)  # seeded: the same episodes
    assert result.per_seed().shape == (2,) and result.mean_score == pytest.approx(result.scores.mean())
