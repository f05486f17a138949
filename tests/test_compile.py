"""torch_compile: every region compiles without graph breaks (fullgraph) and gives eager's numbers on CPU."""

import numpy as np
import pytest
import torch as th

from sb3_generative import GMPG, GMPO
from tests.helpers import TINY_POLICY, make_model

# small solves, so that compiling stays quick on two cores
GMPG_FAST = dict(n_gradient_steps=2, gradient_solver="euler", kl_batch_size=None)
POLICY = {**TINY_POLICY, "n_sampling_steps": 3}


def train(cls, pendulum_id: str, mode, steps: int = 3, **kwargs):  # type: ignore[no-untyped-def]
    extra = {**(GMPG_FAST if cls is GMPG else {}), "critic_steps": 3, "policy_kwargs": POLICY, **kwargs}
    if cls is GMPG:
        extra["bc_steps"] = 3
    model = make_model(cls, pendulum_id, torch_compile=mode, **extra)
    return model.learn(steps, log_interval=1)


@pytest.mark.parametrize("cls", [GMPO, GMPG])
def test_compiled_training_equals_eager(cls, pendulum_id: str) -> None:  # type: ignore[no-untyped-def]
    eager, fast = train(cls, pendulum_id, False), train(cls, pendulum_id, True)
    assert fast.torch_compile is True and fast._compiled["policy_loss"] is not fast.policy_loss
    for key, value in eager.policy.state_dict().items():
        assert th.allclose(value, fast.policy.state_dict()[key], atol=1e-5, rtol=1e-4), key
    again = train(cls, pendulum_id, True)  # the same seed reproduces a compiled run
    for key, value in fast.policy.state_dict().items():
        assert th.equal(value, again.policy.state_dict()[key]), key


@pytest.mark.parametrize("cls", [GMPO, GMPG])
def test_compiled_sampler_equals_eager_and_the_option_is_not_saved(cls, pendulum_id: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = train(cls, pendulum_id, True, steps=1)
    obs = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    compiled = [model.predict(obs[:n], deterministic=True)[0] for n in (1, 5)]
    model.save(tmp_path / "model")
    plain = cls.load(tmp_path / "model")
    assert plain.torch_compile is False
    for n, actions in zip((1, 5), compiled):
        np.testing.assert_allclose(plain.predict(obs[:n], deterministic=True)[0], actions, atol=1e-5)
    again = cls.load(tmp_path / "model", torch_compile=True)
    assert again.torch_compile is True
    np.testing.assert_allclose(again.predict(obs, deterministic=True)[0], compiled[1], atol=1e-5)


def test_compiled_gmpg_with_a_measured_q_scale_equals_eager(pendulum_id: str) -> None:
    """q_scale="auto" is measured outside the compiled loss, which then reads a number."""
    eager, fast = (train(GMPG, pendulum_id, mode, q_scale="auto") for mode in (False, True))
    assert eager.q_scale_value is not None and np.isclose(eager.q_scale_value, fast.q_scale_value, rtol=1e-5)
    for key, value in eager.policy.state_dict().items():
        assert th.allclose(value, fast.policy.state_dict()[key], atol=1e-5, rtol=1e-4), key
