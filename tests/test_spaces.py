"""SB3's space tests (``test_spaces.py`` in SB3), for both algorithms: Box actions of any shape, clear refusals."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from sb3_generative import DatasetError, UnsupportedSpaceError
from sb3_generative.common.datasets import check_supported_spaces
from tests.helpers import ALGOS, TINY_POLICY, make_model, tiny


class MatrixActionEnv(gym.Env):
    """A flat observation and a (2, 2) Box action, as SAC and TD3 support."""

    def __init__(self, action_space: spaces.Space | None = None, observation_space: spaces.Space | None = None) -> None:
        self.observation_space = observation_space or spaces.Box(-1.0, 1.0, (3,), np.float32)
        self.action_space = action_space or spaces.Box(-2.0, 2.0, (2, 2), np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        return self.observation_space.sample(), -float(np.sum(np.square(action))), False, False, {}


def matrix_data(n: int = 64) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "observations": rng.uniform(-1, 1, (n, 3)).astype(np.float32),
        "actions": rng.uniform(-2, 2, (n, 2, 2)).astype(np.float32),
        "rewards": rng.normal(size=n).astype(np.float32),
        "terminals": (np.arange(n) % 16 == 15),
    }


@pytest.mark.parametrize("cls", ALGOS)
def test_box_actions_with_several_dimensions(cls, tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = make_model(cls, matrix_data(), env=MatrixActionEnv()).learn(3)
    assert model.actor.action_dim == 4
    obs = np.zeros((5, 3), dtype=np.float32)
    action, _ = model.predict(obs, deterministic=True)
    assert action.shape == (5, 2, 2) and np.all(np.abs(action) <= 2.0)
    single, _ = model.predict(obs[0], deterministic=True)
    assert single.shape == (2, 2)
    # a batch of one and a batch of two may take different matrix kernels: equal up to float32 rounding
    np.testing.assert_allclose(single, action[0], rtol=1e-5, atol=1e-6)
    model.save(tmp_path / "matrix")
    loaded = cls.load(tmp_path / "matrix")
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], action)


@pytest.mark.parametrize("cls", ALGOS)
@pytest.mark.parametrize(
    "action_space",
    [spaces.Discrete(3), spaces.MultiDiscrete([2, 3]), spaces.MultiBinary(2)],
    ids=lambda space: type(space).__name__,
)
def test_unsupported_action_spaces_are_refused_where_sb3_checks(cls, action_space) -> None:  # type: ignore[no-untyped-def]
    env = MatrixActionEnv(action_space=action_space)
    with pytest.raises(AssertionError, match=r"only supports.*Box.*Box action spaces of any shape") as caught:
        cls("GenerativePolicy", env, **tiny(cls))  # what SB3's algorithms raise, so code written for SB3 catches it
    assert isinstance(caught.value, UnsupportedSpaceError) and isinstance(caught.value, DatasetError)
    with pytest.raises(AssertionError, match="Unsupported action space"):  # the same from a dataset's spaces alone
        check_supported_spaces(spaces.Box(-1, 1, (3,)), action_space)


@pytest.mark.parametrize("cls", ALGOS)
@pytest.mark.parametrize(
    "observation_space",
    [
        spaces.Discrete(4),
        spaces.Dict({"a": spaces.Box(-1, 1, (2,)), "b": spaces.Discrete(3)}),
    ],
    ids=["discrete", "dict-with-discrete"],
)
def test_unsupported_observation_spaces_are_refused(cls, observation_space) -> None:  # type: ignore[no-untyped-def]
    env = MatrixActionEnv(observation_space=observation_space)  # Dicts of Boxes and images: tests/test_observation_spaces.py
    with pytest.raises(AssertionError, match="observation") as caught:
        cls("GenerativePolicy", env, **tiny(cls))
    assert isinstance(caught.value, DatasetError)


@pytest.mark.parametrize("cls", ALGOS)
def test_nested_dict_observations_are_refused_as_sb3_refuses_them(cls) -> None:  # type: ignore[no-untyped-def]
    env = MatrixActionEnv(observation_space=spaces.Dict({"a": spaces.Dict({"b": spaces.Box(-1, 1, (2,))})}))
    with pytest.raises(NotImplementedError, match="Nested observation spaces are not supported"):
        cls("GenerativePolicy", env, **tiny(cls))


@pytest.mark.parametrize("cls", ALGOS)
def test_infinite_or_equal_action_bounds_are_refused(cls, d4rl_arrays) -> None:  # type: ignore[no-untyped-def]
    for bad, match in ((spaces.Box(-np.inf, np.inf, (1,)), "finite"), (spaces.Box(0.5, 0.5, (1,)), "equal")):
        env = MatrixActionEnv(action_space=bad, observation_space=spaces.Box(-np.inf, np.inf, (4,)))
        with pytest.raises(DatasetError, match=match):
            cls("GenerativePolicy", env, dataset=d4rl_arrays, **tiny(cls))


@pytest.mark.parametrize("cls", ALGOS)
def test_empty_net_arch_is_refused_with_the_minimum(cls, pendulum_id: str) -> None:  # type: ignore[no-untyped-def]
    for key in ("net_arch", "critic_net_arch"):
        with pytest.raises(ValueError, match=f"{key} needs at least one positive width"):
            make_model(cls, pendulum_id, policy_kwargs={**TINY_POLICY, key: []})


@pytest.mark.parametrize("cls", ALGOS)
def test_net_arch_as_a_dict_like_sac(cls, pendulum_id: str) -> None:  # type: ignore[no-untyped-def]
    policy_kwargs = {**TINY_POLICY, "net_arch": dict(pi=[8, 4], qf=[12])}
    del policy_kwargs["critic_net_arch"]
    model = make_model(cls, pendulum_id, policy_kwargs=policy_kwargs).learn(1)
    assert model.policy.net_arch == [8, 4] and model.policy.critic_net_arch == [12]
    assert model.actor.net.first.fc1.out_features == 8
    with pytest.raises(ValueError, match="'pi' and 'qf'"):
        make_model(cls, pendulum_id, policy_kwargs={**TINY_POLICY, "net_arch": dict(vf=[8])})


@pytest.mark.parametrize("cls", ALGOS)
def test_actions_of_an_array_dataset_keep_their_shape_in_predict(cls) -> None:  # type: ignore[no-untyped-def]
    data = matrix_data()
    data["actions"] = data["actions"][:, :1] / 2  # (N, 1, 2), within [-1, 1]
    model = cls("GenerativePolicy", None, dataset=data, **tiny(cls)).learn(2)
    assert model.action_space.shape == (1, 2)
    assert model.predict(np.zeros((4, 3), np.float32), deterministic=True)[0].shape == (4, 1, 2)
