"""Every dataset form, data semantics, reward scaling, scores, and bad inputs that must raise clear errors."""

import time

import gymnasium as gym
from stable_baselines3.common.torch_layers import FlattenExtractor
import h5py
import minari
import numpy as np
import pytest

from sb3_generative import GMPO, DatasetError, load_offline_data, normalized_score
from sb3_generative.common.buffers import OfflineReplayBuffer
from sb3_generative.common.datasets import locomotion_reward_scale
from tests.conftest import TINY, make_minari_dataset, pendulum_episodes


def flat_from_episodes(episodes: list) -> dict[str, np.ndarray]:
    """The D4RL flat form of Minari episode buffers."""
    return {
        "observations": np.concatenate([e.observations[:-1] for e in episodes]),
        "next_observations": np.concatenate([e.observations[1:] for e in episodes]),
        "actions": np.concatenate([e.actions for e in episodes]),
        "rewards": np.concatenate([e.rewards for e in episodes]),
        "terminals": np.concatenate([e.terminations for e in episodes]),
        "timeouts": np.concatenate([e.truncations for e in episodes]),
    }


def test_every_form_gives_the_same_transitions(pendulum_id: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    arrays = flat_from_episodes(pendulum_episodes())
    np.savez(tmp_path / "data.npz", **arrays)
    with h5py.File(tmp_path / "data.hdf5", "w") as file:
        for key, value in arrays.items():
            file.create_dataset(key, data=value)
    forms = {
        "id": load_offline_data(pendulum_id),
        "minari": load_offline_data(minari.load_dataset(pendulum_id)),
        "npz": load_offline_data(str(tmp_path / "data.npz")),
        "hdf5": load_offline_data(tmp_path / "data.hdf5"),
        "dict": load_offline_data(arrays),
    }
    reference = forms["dict"]
    assert len(reference) == 800
    for name, data in forms.items():
        for key in ("observations", "actions", "rewards", "next_observations", "terminations", "truncations"):
            np.testing.assert_allclose(getattr(data, key), getattr(reference, key), err_msg=f"{name}: {key}")
    assert forms["id"].source == pendulum_id and forms["npz"].source.endswith("data.npz")
    assert forms["id"].ref_min_score == -1500.0 and forms["id"].env_spec.id == "Pendulum-v1"
    # Minari: the next observation of step t is observation t + 1 of the same episode
    np.testing.assert_array_equal(forms["id"].next_observations[:199], forms["id"].observations[1:200])


def test_termination_and_truncation_semantics(d4rl_arrays) -> None:  # type: ignore[no-untyped-def]
    data = load_offline_data(d4rl_arrays)
    assert np.flatnonzero(data.terminations).tolist() == [9, 19]  # a fall on the last allowed step is terminal
    assert np.flatnonzero(data.truncations).tolist() == [29]  # the cut last episode is a truncation
    assert data.episode_ends.tolist() == [9, 19, 29]
    buffer = OfflineReplayBuffer(data, gym.spaces.Box(-1, 1, (1,)), reward_scale=2.0, seed=0)
    assert buffer.dones[:, 0].nonzero().flatten().tolist() == [9, 19]  # time-outs keep bootstrapping
    np.testing.assert_allclose(buffer.rewards[:, 0].numpy(), 2.0 * d4rl_arrays["rewards"], rtol=1e-6)


def test_minari_step_both_terminated_and_truncated_is_terminal(minari_root: str) -> None:
    episodes = pendulum_episodes(n_episodes=2, length=50)
    episodes[0].terminations[-1] = True  # gymnasium may report both flags on the same step
    make_minari_dataset("sb3gen-test/pendulum/both-flags-v0", episodes)
    data = load_offline_data("sb3gen-test/pendulum/both-flags-v0")
    assert data.terminations[49] and not data.truncations[49]
    assert data.truncations[99] and not data.terminations[99]


def test_d4rl_arrays_without_next_observations(d4rl_arrays) -> None:  # type: ignore[no-untyped-def]
    arrays = {k: v for k, v in d4rl_arrays.items() if k != "next_observations"}
    arrays["timeouts"] = np.zeros(30, bool)
    arrays["timeouts"][24] = True  # a time-out: the next row belongs to another episode
    data = load_offline_data(arrays)
    # step 24 (time-out, next state unknown) and the last row (neither flag, no next row) are dropped
    assert len(data) == 28
    np.testing.assert_array_equal(data.next_observations[0], arrays["observations"][1])
    assert data.terminations.sum() == 2


def test_actions_are_scaled_into_minus_one_one(pendulum_id: str) -> None:
    model = GMPO("GenerativePolicy", "Pendulum-v1", dataset=pendulum_id, **TINY)
    raw = load_offline_data(pendulum_id).actions
    np.testing.assert_allclose(model.replay_buffer.actions.numpy(), raw / 2.0, atol=1e-6)  # Box(-2, 2)
    assert model.replay_buffer.actions.abs().max() <= 1.0


def test_locomotion_reward_scale_is_stored_and_used(pendulum_id: str) -> None:
    data = load_offline_data(pendulum_id)
    returns = data.episode_returns()
    assert returns.shape == (4,)
    assert locomotion_reward_scale(data) == pytest.approx(1000.0 / (returns.max() - returns.min()))
    model = GMPO("GenerativePolicy", "Pendulum-v1", dataset=pendulum_id, **TINY)
    assert model.reward_scale == pytest.approx(locomotion_reward_scale(data))
    unscaled = GMPO("GenerativePolicy", "Pendulum-v1", dataset=pendulum_id, normalize_reward=False, **TINY)
    assert unscaled.reward_scale == 1.0


def test_normalized_score(pendulum_id: str) -> None:
    assert normalized_score(-150.0, pendulum_id) == pytest.approx(100.0)
    assert normalized_score([-1500.0, -825.0], ref_min_score=-1500.0, ref_max_score=-150.0) == pytest.approx([0.0, 50.0])
    model = GMPO("GenerativePolicy", "Pendulum-v1", dataset=pendulum_id, **TINY)
    assert model.normalized_score(-825.0) == pytest.approx(50.0)
    with pytest.raises(DatasetError, match="ref_min_score"):
        normalized_score(1.0, {"observations": 0})  # type: ignore[arg-type]


def test_observation_normalization_lives_in_the_policy(pendulum_id: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = GMPO("GenerativePolicy", "Pendulum-v1", dataset=pendulum_id, normalize_observations=True, **TINY)
    data = load_offline_data(pendulum_id)
    np.testing.assert_allclose(model.policy.obs_mean.numpy(), data.observations.mean(0), rtol=1e-5, atol=1e-6)
    model.save(tmp_path / "m")
    loaded = GMPO.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.policy.obs_std.numpy(), model.policy.obs_std.numpy())


# ---------------------------------------------------------------------------------------------------- bad inputs
def test_missing_minari_id_is_named_quickly(minari_root: str) -> None:
    start = time.perf_counter()
    with pytest.raises(DatasetError, match=r"'nobody/nothing/none-v0'.*MINARI_DATASETS_PATH") as error:
        GMPO("GenerativePolicy", "Pendulum-v1", dataset="nobody/nothing/none-v0")
    assert minari_root in str(error.value)
    assert time.perf_counter() - start < 5.0  # no network attempt


def test_missing_file_is_named(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DatasetError, match="does not exist"):
        load_offline_data(str(tmp_path / "absent.hdf5"))


def test_env_and_dataset_spaces_that_differ(pendulum_id: str) -> None:
    with pytest.raises(DatasetError, match="Observation shape mismatch"):
        GMPO("GenerativePolicy", "MountainCarContinuous-v0", dataset=pendulum_id)


def test_actions_outside_bounds_are_counted_or_clipped(d4rl_arrays) -> None:  # type: ignore[no-untyped-def]
    arrays = dict(d4rl_arrays, actions=d4rl_arrays["actions"].copy())
    arrays["actions"][[3, 7]] = 1.5
    env = gym.make("Pendulum-v1")  # Box(-2, 2): fine
    env.observation_space = gym.spaces.Box(-np.inf, np.inf, (4,))
    env.action_space = gym.spaces.Box(-1.0, 1.0, (1,))
    with pytest.raises(DatasetError, match=r"2 of 30 dataset actions lie outside.*first at index 3"):
        GMPO("GenerativePolicy", env, dataset=arrays, **TINY)
    with pytest.warns(UserWarning, match="Clipping 2"):
        model = GMPO("GenerativePolicy", env, dataset=arrays, clip_actions=True, **TINY)
    assert model.replay_buffer.actions.max() <= 1.0


@pytest.mark.parametrize("key", ["observations", "actions", "rewards", "next_observations"])
def test_nan_in_data_is_counted_with_first_index(d4rl_arrays, key: str) -> None:  # type: ignore[no-untyped-def]
    arrays = {k: v.copy() for k, v in d4rl_arrays.items()}
    arrays[key].reshape(30, -1)[[5, 12], 0] = [np.nan, np.inf]
    with pytest.raises(DatasetError, match=rf"{key}: 2 non-finite value\(s\).*first at index 5"):
        GMPO("GenerativePolicy", None, dataset=arrays)


def test_empty_dataset(d4rl_arrays) -> None:  # type: ignore[no-untyped-def]
    empty = {k: v[:0] for k, v in d4rl_arrays.items()}
    with pytest.raises(DatasetError, match="empty"):
        GMPO("GenerativePolicy", None, dataset=empty)


def test_inconsistent_lengths_and_missing_keys(d4rl_arrays) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DatasetError, match="inconsistent lengths"):
        load_offline_data(dict(d4rl_arrays, rewards=d4rl_arrays["rewards"][:-1]))
    with pytest.raises(DatasetError, match=r"lacks the array\(s\) \['actions'\]"):
        load_offline_data({k: v for k, v in d4rl_arrays.items() if k != "actions"})


def test_discrete_actions_are_unsupported(d4rl_arrays) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DatasetError, match=r"as action spaces but Discrete.*Box action spaces of any shape"):
        GMPO("GenerativePolicy", "CartPole-v1")


def test_images_too_small_for_the_features_extractor_are_named() -> None:
    env = gym.make("Pendulum-v1")
    env.observation_space = gym.spaces.Box(0, 255, (8, 8, 3), np.uint8)  # SB3 transposes it to (3, 8, 8)
    with pytest.raises(ValueError, match=r"NatureCNN cannot take observations of shape \(3, 8, 8\)"):
        GMPO("CnnPolicy", env)
    model = GMPO("CnnPolicy", env, policy_kwargs=dict(features_extractor_class=FlattenExtractor))  # the way out it names
    assert model.observation_space.shape == (3, 8, 8)


def test_unsupported_dataset_type() -> None:
    with pytest.raises(DatasetError, match="Unsupported dataset of type list"):
        load_offline_data([1, 2, 3])


def test_corrupt_npz_gives_dataset_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "broken.npz"
    path.write_bytes(b"PK\x03\x04 this is not a zip archive")
    with pytest.raises(DatasetError, match="Cannot read"):
        load_offline_data(str(path))
