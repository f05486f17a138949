"""A critic trained by d3rlpy (ReBRAC, IQL) copied in through ``critic=``: the same Q values as d3rlpy's, the checks."""

from typing import Any

import numpy as np
import pytest
import torch as th

from sb3_generative import GMPG, GMPO
from sb3_generative.critics.iql import _import_d3rlpy
from tests.helpers import TINY_POLICY, make_model

D3 = _import_d3rlpy()
CRITIC = dict(TINY_POLICY, critic_net_arch=[16, 16], critic_layer_norm=True)


def arrays(n: int = 200) -> dict[str, np.ndarray]:
    """Pendulum-shaped data whose observations are far from standardised, so the input maps matter."""
    rng = np.random.default_rng(0)
    obs = rng.normal(5.0, 3.0, size=(n, 3)).astype(np.float32)
    return {
        "observations": obs,
        "actions": rng.uniform(-2.0, 2.0, size=(n, 1)).astype(np.float32),
        "rewards": rng.normal(size=n).astype(np.float32),
        "next_observations": obs + 0.1,
        "terminals": np.zeros(n, bool),
        "timeouts": np.arange(n) % 50 == 49,
    }


def fitted(config: Any, data: dict[str, np.ndarray]) -> Any:
    """A d3rlpy algorithm trained for a few steps on the same data."""
    mdp = D3.dataset.MDPDataset(
        data["observations"], data["actions"], data["rewards"], data["terminals"].astype(np.float32),
        timeouts=data["timeouts"].astype(np.float32),
    )  # fmt: skip
    algo = config.create(device="cpu:0")
    algo.fit(mdp, n_steps=5, n_steps_per_epoch=5, show_progress=False, logger_adapter=D3.logging.NoopAdapterFactory())
    return algo


def rebrac(data: dict[str, np.ndarray], layer_norm: bool = True) -> Any:
    return fitted(
        D3.algos.ReBRACConfig(
            batch_size=32,
            actor_encoder_factory=D3.models.VectorEncoderFactory([16, 16]),
            critic_encoder_factory=D3.models.VectorEncoderFactory([16, 16], use_layer_norm=layer_norm),
            observation_scaler=D3.preprocessing.StandardObservationScaler(),
            action_scaler=D3.preprocessing.MinMaxActionScaler(),
        ),
        data,
    )


def our_q(model: Any, data: dict[str, np.ndarray]) -> np.ndarray:
    obs = model.policy.normalize_obs(th.as_tensor(data["observations"]))
    low, high = (th.as_tensor(b) for b in (model.action_space.low, model.action_space.high))
    actions = 2.0 * (th.as_tensor(data["actions"]) - low) / (high - low) - 1.0
    with th.no_grad():
        return model.critic.q_value(obs, actions, "mean").squeeze(-1).numpy()


def test_gmpg_takes_a_rebrac_critic_with_d3rlpys_q_values(tmp_path: Any) -> None:
    data = arrays()
    algo = rebrac(data)
    model = make_model(GMPG, data, critic=algo, policy_kwargs=CRITIC)
    assert model.critic_steps_done == model.critic_steps
    expected = algo.predict_value(data["observations"], data["actions"])
    np.testing.assert_allclose(our_q(model, data), expected, rtol=1e-4, atol=1e-4)
    before = {k: v.clone() for k, v in model.critic.state_dict().items()}
    model.learn(2)  # no critic training: the copied Q stays as it is
    assert all(th.equal(before[k], v) for k, v in model.critic.state_dict().items())
    model.save(tmp_path / "gmpg.zip")
    loaded = GMPG.load(tmp_path / "gmpg.zip", dataset=data)
    np.testing.assert_allclose(our_q(loaded, data), expected, rtol=1e-4, atol=1e-4)


def test_gmpo_refuses_a_critic_without_a_value_function() -> None:
    data = arrays()
    with pytest.raises(ValueError, match="no value function"):
        make_model(GMPO, data, critic=rebrac(data), policy_kwargs=CRITIC)


def test_gmpo_takes_a_d3rlpy_iql_critic_with_its_value_function() -> None:
    data = arrays()
    config = D3.algos.IQLConfig(
        batch_size=32,
        critic_encoder_factory=D3.models.VectorEncoderFactory([16, 16]),
        value_encoder_factory=D3.models.VectorEncoderFactory([16, 16]),
        observation_scaler=D3.preprocessing.StandardObservationScaler(),
    )
    algo = fitted(config, data)
    model = make_model(GMPO, data, critic=algo, policy_kwargs=dict(TINY_POLICY, critic_net_arch=[16, 16]))
    scaled_obs = algo.config.observation_scaler.transform(th.as_tensor(data["observations"]))
    with th.no_grad():
        expected_v = algo.impl.modules.value_func(scaled_obs).squeeze(-1).numpy()
        ours_v = model.critic.value(model.policy.normalize_obs(th.as_tensor(data["observations"]))).squeeze(-1).numpy()
    np.testing.assert_allclose(ours_v, expected_v, rtol=1e-4, atol=1e-4)
    model.learn(2)


def test_a_critic_of_other_sizes_names_the_settings_that_fit() -> None:
    data = arrays()
    with pytest.raises(ValueError, match=r"critic_net_arch=\[16, 16\], critic_layer_norm=True, n_critics=2"):
        make_model(GMPG, data, critic=rebrac(data))  # the tiny critic has no layer norm


def test_an_unfitted_d3rlpy_algorithm_is_refused() -> None:
    with pytest.raises(ValueError, match="no Q-functions yet"):
        make_model(GMPG, arrays(), critic=D3.algos.ReBRACConfig().create(device="cpu:0"), policy_kwargs=CRITIC)


def test_a_critic_built_otherwise_is_caught_by_its_q_values() -> None:
    data = arrays()
    config = D3.algos.TD3PlusBCConfig(
        batch_size=32,
        actor_encoder_factory=D3.models.VectorEncoderFactory([16, 16]),
        critic_encoder_factory=D3.models.VectorEncoderFactory([16, 16], activation="tanh", use_layer_norm=True),
    )  # the same tensors as this model's critic, another activation
    with pytest.raises(ValueError, match="disagrees with d3rlpy's own Q values"):
        make_model(GMPG, data, critic=fitted(config, data), policy_kwargs=CRITIC)
