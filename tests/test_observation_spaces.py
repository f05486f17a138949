"""Dict and image observations the SB3 way (SB3's ``test_dict_env.py`` and image tests, for both algorithms): features
extractors, ``MultiInputPolicy`` / ``CnnPolicy``, ``share_features_extractor``, and Dict datasets from every source."""

import h5py
import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, CombinedExtractor, FlattenExtractor, NatureCNN

from sb3_generative import GMPG, GMPO, DatasetError, load_offline_data
from sb3_generative.common.model_files import ModelFileError
from tests.helpers import ALGOS, tiny

N = 64
GOAL_SPACE = spaces.Dict(
    {"observation": spaces.Box(-1, 1, (3,), np.float32), "desired_goal": spaces.Box(-1, 1, (2,), np.float32)}
)
IMAGE_SPACE = spaces.Box(0, 255, (3, 36, 36), np.uint8)  # channel-first, NatureCNN's smallest input


class SpaceEnv(gym.Env):
    """Random observations of a given space and a (2,) Box action; 8-step episodes."""

    def __init__(self, observation_space: spaces.Space) -> None:
        self.observation_space, self.action_space = observation_space, spaces.Box(-1, 1, (2,), np.float32)
        self.steps = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple:
        super().reset(seed=seed)
        self.observation_space.seed(seed)
        self.steps = 0
        return self.observation_space.sample(), {}

    def step(self, action: np.ndarray) -> tuple:
        self.steps += 1
        return self.observation_space.sample(), -float(np.sum(np.square(action))), False, self.steps >= 8, {}


class GoalEnv(SpaceEnv):
    """:class:`SpaceEnv` on the goal-conditioned Dict space (an importable entry point, as Minari records one)."""

    def __init__(self) -> None:
        super().__init__(GOAL_SPACE)


def goal_arrays(n: int = N) -> dict:
    rng = np.random.default_rng(0)
    observations = {"observation": rng.uniform(-1, 1, (n, 3)).astype(np.float32),
                    "desired_goal": rng.uniform(-1, 1, (n, 2)).astype(np.float32)}  # fmt: skip
    actions = np.clip(observations["desired_goal"] + 0.1 * rng.normal(size=(n, 2)), -1, 1).astype(np.float32)
    return {"observations": observations, "actions": actions, "rewards": rng.normal(size=n).astype(np.float32),
            "terminals": np.arange(n) % 16 == 15}  # fmt: skip


def image_arrays(n: int = 32) -> dict:
    rng = np.random.default_rng(1)
    return {"observations": rng.integers(0, 256, (n, *IMAGE_SPACE.shape), dtype=np.uint8),
            "actions": rng.uniform(-1, 1, (n, 2)).astype(np.float32), "rewards": rng.normal(size=n).astype(np.float32),
            "terminals": np.arange(n) % 8 == 7}  # fmt: skip


def structure(space: spaces.Dict) -> dict:  # type: ignore[type-arg]
    """A Dict space's keys and shapes (data without an env has unbounded Boxes of the same shapes)."""
    return {key: part.shape for key, part in space.spaces.items()}


def small(cls: type, **kwargs) -> dict:  # type: ignore[no-untyped-def, type-arg]
    settings = tiny(cls, batch_size=8, critic_steps=4, normalize_observations=True)
    policy_kwargs = {**settings["policy_kwargs"], **kwargs.pop("policy_kwargs", {})}
    for key in ("critic_net_arch",):
        policy_kwargs.pop(key, None)
    return {**settings, "policy_kwargs": {**policy_kwargs, "critic_net_arch": [16]}, **kwargs}


@pytest.mark.parametrize("cls", ALGOS)
@pytest.mark.parametrize("share", [False, True])
def test_dict_observations_train_predict_save_and_load(cls, share, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = SpaceEnv(GOAL_SPACE)
    kwargs = small(cls, policy_kwargs=dict(share_features_extractor=share))
    model = cls("MultiInputPolicy", env, dataset=goal_arrays(), **kwargs)
    model.learn(3)
    assert model.policy.features_extractor_class is CombinedExtractor
    assert isinstance(model.actor.encoder.extractor, CombinedExtractor)
    # SB3's meaning of sharing: one extractor, trained by the actor's loss, never by the critic's optimizer
    assert (model.critic.encoder is model.actor.encoder) == share
    assert model.critic.train_encoder == (not share)  # (CombinedExtractor on vectors has no parameters: see images)
    obs = env.observation_space.sample()
    action, _ = model.predict(obs, deterministic=True)
    assert action.shape == (2,)
    batch = {key: np.stack([env.observation_space.sample()[key] for _ in range(5)]) for key in GOAL_SPACE.spaces}
    actions, _ = model.predict(batch, deterministic=True)
    assert actions.shape == (5, 2)
    one = {key: value[:1] for key, value in batch.items()}
    np.testing.assert_allclose(model.predict(one, deterministic=True)[0][0], actions[0], rtol=1e-5, atol=1e-6)
    mean, _ = evaluate_policy(model, SpaceEnv(GOAL_SPACE), n_eval_episodes=2)
    assert np.isfinite(mean)
    model.save(tmp_path / "goal")
    for safe in (False, True):
        loaded = cls.load(tmp_path / "goal", safe=safe, device="cpu")
        assert loaded.observation_space == GOAL_SPACE
        np.testing.assert_array_equal(loaded.predict(batch, deterministic=True)[0], actions)


def test_dict_observations_are_normalised_per_key() -> None:
    data = goal_arrays()
    data["observations"]["observation"] = data["observations"]["observation"] * 50 + 7
    model = GMPO("MultiInputPolicy", SpaceEnv(GOAL_SPACE), dataset=data, **small(GMPO))
    layout = model.policy.layout  # keys in the space's order: desired_goal (2 numbers), then observation (3)
    assert layout.keys == ["desired_goal", "observation"] and layout.sizes == [2, 3]
    np.testing.assert_allclose(model.policy.obs_mean[2:].numpy(), data["observations"]["observation"].mean(0), rtol=1e-4)
    np.testing.assert_allclose(model.policy.obs_std[:2].numpy(), data["observations"]["desired_goal"].std(0), rtol=1e-3)


@pytest.mark.parametrize("cls", ALGOS)
def test_image_observations_with_nature_cnn(cls, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = SpaceEnv(IMAGE_SPACE)
    kwargs = small(cls, policy_kwargs=dict(features_extractor_kwargs=dict(features_dim=32)))
    model = cls("CnnPolicy", env, dataset=image_arrays(), **kwargs)
    before = [p.detach().clone() for p in model.critic.encoder.parameters()]
    model.learn(2)
    assert any(not th.equal(a, b) for a, b in zip(before, model.critic.encoder.parameters()))  # the critic trains its own
    assert isinstance(model.actor.encoder.extractor, NatureCNN) and isinstance(model.critic.encoder.extractor, NatureCNN)
    # images are scaled by 1/255 as SB3 does, never standardised
    assert th.all(model.policy.obs_mean == 0) and th.all(model.policy.obs_std == 1)
    critic_params = {id(p) for group in model.critic.optimizer.param_groups for p in group["params"]}
    assert all(id(p) in critic_params for p in model.critic.encoder.parameters())
    assert not any(id(p) in critic_params for p in model.actor.encoder.parameters())
    obs = env.observation_space.sample()
    action, _ = model.predict(obs, deterministic=True)
    assert action.shape == (2,)
    model.save(tmp_path / "image")
    loaded = cls.load(tmp_path / "image", safe=True, device="cpu")
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], action)


class TinyExtractor(BaseFeaturesExtractor):
    """A user's own extractor: the goal minus the first two observation numbers, then a linear layer."""

    def __init__(self, observation_space: spaces.Dict, features_dim: int = 4) -> None:
        super().__init__(observation_space, features_dim)
        self.linear = th.nn.Linear(5, features_dim)

    def forward(self, observations: dict) -> th.Tensor:  # type: ignore[override]
        goal, state = observations["desired_goal"], observations["observation"]
        return self.linear(th.cat([goal - state[:, :2], state], dim=1))


def test_a_users_own_extractor_trains_and_safe_loading_refuses_to_run_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    own = dict(features_extractor_class=TinyExtractor, features_extractor_kwargs={"features_dim": 6})
    kwargs = small(GMPO, policy_kwargs=own)
    model = GMPO("MultiInputPolicy", SpaceEnv(GOAL_SPACE), dataset=goal_arrays(), **kwargs).learn(2)
    assert isinstance(model.actor.encoder.extractor, TinyExtractor) and model.actor.obs_dim == 6
    model.save(tmp_path / "own")
    obs = GOAL_SPACE.sample()
    loaded = GMPO.load(tmp_path / "own")
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])
    with pytest.raises(ModelFileError, match="safe loading rebuilds SB3's own"):
        GMPO.load(tmp_path / "own", safe=True)


def test_flat_observations_keep_the_flatten_extractor_and_no_extra_parameters(pendulum_id: str) -> None:
    model = GMPO("MlpPolicy", "Pendulum-v1", dataset=pendulum_id, **tiny(GMPO))
    assert model.policy.features_extractor_class is FlattenExtractor
    assert model.actor.encoder is None and model.critic.encoder is None  # the rows are the features, as before


def test_dict_datasets_load_from_npz_hdf5_and_minari(tmp_path, minari_root: str) -> None:  # type: ignore[no-untyped-def]
    arrays = goal_arrays(20)
    expected = load_offline_data(arrays)
    assert structure(expected.observation_space) == structure(GOAL_SPACE) and expected.observations.shape[1] == 5
    flat = {f"observations/{k}": v for k, v in arrays["observations"].items()}
    np.savez(tmp_path / "goal.npz", **flat, **{k: v for k, v in arrays.items() if k != "observations"})
    with h5py.File(tmp_path / "goal.hdf5", "w") as file:
        for key, value in arrays["observations"].items():
            file.create_dataset(f"observations/{key}", data=value)
        for key in ("actions", "rewards", "terminals"):
            file.create_dataset(key, data=arrays[key])
    for path in (tmp_path / "goal.npz", tmp_path / "goal.hdf5"):
        data = load_offline_data(str(path))
        assert structure(data.observation_space) == structure(GOAL_SPACE)
        np.testing.assert_array_equal(data.observations, expected.observations)
    # Minari stores a Dict observation as a dict of arrays per episode
    from minari.data_collector import EpisodeBuffer

    from sb3_generative.demo import make_minari_dataset

    episodes, rng = [], np.random.default_rng(2)
    for k in range(3):
        obs = {"desired_goal": rng.uniform(-1, 1, (9, 2)).astype(np.float32),
               "observation": rng.uniform(-1, 1, (9, 3)).astype(np.float32)}  # fmt: skip
        episodes.append(EpisodeBuffer(id=k, observations=obs, actions=rng.uniform(-1, 1, (8, 2)).astype(np.float32),
                                      rewards=list(rng.normal(size=8)), terminations=[False] * 7 + [True],
                                      truncations=[False] * 8))  # fmt: skip
    gym.register("SpaceEnv-goal-v0", entry_point="tests.test_observation_spaces:GoalEnv", max_episode_steps=8)
    make_minari_dataset("sb3gen-test/goal/random-v0", episodes, env_id="SpaceEnv-goal-v0")
    data = load_offline_data("sb3gen-test/goal/random-v0")
    assert data.observation_space == GOAL_SPACE and len(data) == 24 and data.terminations.sum() == 3
    np.testing.assert_array_equal(data.observations[:8, 2:], episodes[0].observations["observation"][:8])
    model = GMPG("MultiInputPolicy", None, dataset="sb3gen-test/goal/random-v0", **small(GMPG)).learn(2)
    assert model.predict(GOAL_SPACE.sample())[0].shape == (2,)


def test_dict_data_that_does_not_fit_the_env_is_named() -> None:
    other = spaces.Dict({"observation": spaces.Box(-1, 1, (4,), np.float32), "desired_goal": spaces.Box(-1, 1, (2,))})
    with pytest.raises(DatasetError, match=r"Observation shape mismatch.*'observation': \(3,\)"):
        GMPO("MultiInputPolicy", SpaceEnv(other), dataset=goal_arrays(), **small(GMPO))
    ragged = goal_arrays()
    ragged["observations"]["desired_goal"] = ragged["observations"]["desired_goal"][:-1]
    with pytest.raises(DatasetError, match="different numbers of rows"):
        load_offline_data(ragged)
    with pytest.raises(DatasetError, match="empty dict"):
        load_offline_data({**goal_arrays(), "observations": {}})


@pytest.mark.parametrize("cls", ALGOS)
def test_dict_and_image_policies_export_with_one_input_per_key(cls, tmp_path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("onnxruntime")
    from sb3_generative.export import export_onnx, export_torchscript, run_onnx

    model = cls("MultiInputPolicy", GoalEnv(), dataset=goal_arrays(), **small(cls)).learn(2)
    batch = {key: np.stack([GOAL_SPACE.sample()[key] for _ in range(4)]) for key in GOAL_SPACE.spaces}
    expected, _ = model.predict(batch, deterministic=True)
    export_onnx(model, tmp_path / "goal.onnx")
    np.testing.assert_allclose(run_onnx(tmp_path / "goal.onnx", batch), expected, atol=1e-5)
    program = th.jit.load(str(export_torchscript(model, tmp_path / "goal.pt") and tmp_path / "goal.pt"))
    inputs = [th.as_tensor(batch[key]) for key in ("desired_goal", "observation")]  # the space's key order
    np.testing.assert_allclose(program(*inputs).numpy(), expected, atol=1e-5)
    image = cls("CnnPolicy", SpaceEnv(IMAGE_SPACE), dataset=image_arrays(),
                **small(cls, policy_kwargs=dict(features_extractor_kwargs=dict(features_dim=32)))).learn(1)  # fmt: skip
    frames = np.stack([IMAGE_SPACE.sample() for _ in range(3)])
    export_onnx(image, tmp_path / "image.onnx")
    expected_image, _ = image.predict(frames, deterministic=True)
    np.testing.assert_allclose(run_onnx(tmp_path / "image.onnx", frames), expected_image, atol=1e-5)


def test_channel_last_image_data_is_transposed_as_sb3_transposes_the_env() -> None:
    """An env with (H, W, C) images is wrapped by SB3 in VecTransposeImage (the model sees (C, H, W)); the data recorded
    from it holds (H, W, C) images, and is transposed the same way, so training and predict agree."""
    channel_last = spaces.Box(0, 255, (36, 36, 3), np.uint8)
    data = image_arrays(16)
    data["observations"] = np.ascontiguousarray(data["observations"].transpose(0, 2, 3, 1))  # as the env records them
    kwargs = small(GMPO, policy_kwargs=dict(features_extractor_kwargs=dict(features_dim=32)))
    model = GMPO("CnnPolicy", SpaceEnv(channel_last), dataset=data, **kwargs)
    assert model.observation_space.shape == (3, 36, 36)
    stored = model.replay_buffer.observations[0].reshape(3, 36, 36).numpy()
    np.testing.assert_array_equal(stored, data["observations"][0].transpose(2, 0, 1))
    model.learn(1)
    assert model.predict(channel_last.sample(), deterministic=True)[0].shape == (2,)  # SB3 transposes in predict
