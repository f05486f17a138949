"""Every setting is validated when the model is built, before any data is read: a ValueError naming it."""

import math

import pytest

from sb3_generative import GMPG, GMPO
from tests.helpers import TINY_POLICY, tiny

MISSING = "no/such/file.npz"  # reading it would fail with a DatasetError: a setting error must come first

BOTH = [
    ("batch_size", [0, -4, 1.5, True, None]),
    ("critic_batch_size", [0, -1, 2.5]),
    ("critic_steps", [-1, 1.5, None]),
    ("learning_rate", [0.0, -1e-4, math.inf, math.nan, "fast"]),
    ("critic_learning_rate", [0.0, math.inf, math.nan]),
    ("gamma", [0.0, 1.5, -0.1, math.nan]),
    ("tau", [0.0, 1.01, math.inf]),
    ("expectile", [0.0, 1.0, 1.5]),
    ("beta", [-1.0, math.inf, math.nan]),
    ("precision", ["fp8", None]),
    ("normalize_reward", ["yes", 1]),
    ("bc_steps", [-1, 2.0]),
    ("bc_learning_rate", [0.0, math.inf]),
    ("bc_batch_size", [0, 1.5]),
]
GMPO_ONLY = [("weight_clamp", [0.0, -1.0, math.inf])]
GMPG_ONLY = [
    ("chunk_size", [0, -2]),
    ("kl_batch_size", [0, True, 2.5]),
    ("clip_q_actions", ["yes", 1, None]),
    ("kl_per_dimension", ["no", 0]),
    ("n_gradient_steps", [0, None, 2.0]),
    ("grid_power", [0.5, 0.0, math.inf]),
    ("grid_jitter", [-0.1, 1.5]),
    ("gradient_solver", ["dopri5", "magic"]),
    ("gradient_method", ["magic"]),
    ("divergence", ["trace"]),
]
POLICY = [
    ("net_arch", [[], [0], "wide", [8.5]]),
    ("critic_net_arch", [[], [-1]]),
    ("n_sampling_steps", [0, -3, 1.5]),
    ("solver", ["leapfrog"]),
    ("generative_model", ["gan"]),
    ("n_critics", [0]),
    ("emb_dim", [0]),
    ("time_embed_dim", [7]),
]
CASES = [
    (cls, name, value)
    for cls, table in ((GMPO, BOTH + GMPO_ONLY), (GMPG, BOTH + GMPG_ONLY))
    for name, values in table
    for value in values
]
POLICY_CASES = [(cls, name, value) for cls in (GMPO, GMPG) for name, values in POLICY for value in values]


@pytest.mark.parametrize("cls,name,value", CASES, ids=lambda v: getattr(v, "__name__", repr(v)))
def test_bad_setting_is_refused_before_the_data(cls, name: str, value) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=name) as error:
        cls("GenerativePolicy", None, dataset=MISSING, **tiny(cls, **{name: value}))
    assert type(error.value).__name__ != "DatasetError", error.value


@pytest.mark.parametrize("cls,name,value", POLICY_CASES, ids=lambda v: getattr(v, "__name__", repr(v)))
def test_bad_policy_setting_is_refused_before_the_data(cls, name: str, value) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=name if name != "generative_model" else "generative model") as error:
        cls("GenerativePolicy", None, dataset=MISSING, **tiny(cls, policy_kwargs={**TINY_POLICY, name: value}))
    assert type(error.value).__name__ != "DatasetError", error.value


@pytest.mark.parametrize("cls", [GMPO, GMPG])
@pytest.mark.parametrize("log_interval", [0, -5, 2.5])
def test_bad_log_interval_is_refused_in_learn_and_pretrain(cls, log_interval, d4rl_arrays) -> None:  # type: ignore[no-untyped-def]
    model = cls("GenerativePolicy", None, dataset=d4rl_arrays, **tiny(cls))
    for run in (lambda: model.learn(2, log_interval=log_interval), lambda: model.pretrain(log_interval=log_interval)):
        with pytest.raises(ValueError, match="log_interval"):
            run()
    assert model.critic_steps_done == 0 and model.num_timesteps == 0
