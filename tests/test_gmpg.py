"""GMPG: stages, SB3 behaviours, gradient methods, and the policy gradient against the KL term on a toy."""

import copy
import math
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.logger import configure

from sb3_generative import GMPG
from tests.helpers import TINY, TINY_POLICY

GMPG_TINY = dict(TINY, bc_steps=20, n_gradient_steps=3)


def make_model(pendulum_id: str, **kwargs) -> GMPG:  # type: ignore[no-untyped-def]
    return GMPG("GenerativePolicy", "Pendulum-v1", dataset=pendulum_id, **{**GMPG_TINY, "seed": 0, **kwargs})


def test_stages_copy_mu_into_pi_and_freeze_it(pendulum_id: str) -> None:
    model = make_model(pendulum_id)
    model.pretrain()
    assert model.bc_steps_done == 20 and model.critic_steps_done == 20
    actor, reference = model.policy.actor.state_dict(), model.policy.reference.state_dict()
    for key in actor:
        assert th.equal(actor[key], reference[key]), key
    assert not any(p.requires_grad for p in model.policy.reference.parameters())
    model.learn(5)
    assert not th.equal(model.policy.actor.net.last.weight, model.policy.reference.net.last.weight)
    for key, value in reference.items():
        assert th.equal(value, model.policy.reference.state_dict()[key]), key  # mu never moves


def test_save_load_keeps_mu_and_predictions(pendulum_id: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = make_model(pendulum_id).learn(5)
    obs = np.zeros((3, 3), dtype=np.float32)
    model.save(tmp_path / "gmpg")
    loaded = GMPG.load(tmp_path / "gmpg")
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])
    assert th.equal(loaded.policy.reference.net.last.weight, model.policy.reference.net.last.weight)
    assert loaded.bc_steps_done == 20
    loaded.learn(2)
    assert loaded.bc_steps_done == 20  # stages are not run again


def test_critic_shared_with_gmpo(pendulum_id: str) -> None:
    from sb3_generative import GMPO

    gmpo = GMPO("GenerativePolicy", "Pendulum-v1", dataset=pendulum_id, **TINY).learn(1)
    gmpg = make_model(pendulum_id, critic=gmpo.critic)
    assert gmpg.critic_steps_done == gmpg.critic_steps
    assert th.equal(gmpg.critic.value_func._fc.weight, gmpo.critic.value_func._fc.weight)


def test_gradient_methods_agree(pendulum_id: str) -> None:
    model = make_model(pendulum_id, grid_jitter=0.0)  # the same grid for every method
    model.pretrain()
    obs, noise = th.randn(6, 3), th.randn(6, 1)
    grads = {}
    for method in ("backprop", "checkpoint", "adjoint"):
        model.gradient_method = method
        model.policy.optimizer.zero_grad()
        loss, _ = model.policy_loss(obs, noise)
        loss.backward()
        grads[method] = th.cat([p.grad.flatten() for p in model.actor.parameters() if p.grad is not None])
    assert th.allclose(grads["backprop"], grads["checkpoint"], atol=1e-6)
    # torchdiffeq's adjoint of Euler is Euler on the adjoint ODE: close to, not equal to, the discrete gradient
    assert th.nn.functional.cosine_similarity(grads["backprop"], grads["adjoint"], dim=0) > 0.95


def test_chunks_add_up_to_the_whole_batch_gradient(pendulum_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    model = make_model(pendulum_id, chunk_size=8, grid_jitter=0.0, kl_batch_size=None)
    model.pretrain()
    obs, noise = th.randn(32, 3), th.randn(32, 1)
    model.critic.requires_grad_(False)
    model.policy.optimizer.zero_grad()
    model.policy_loss(obs, noise)[0].backward()
    expected = [p.grad.clone() for p in model.actor.parameters()]
    offsets, policy_loss = iter(range(0, 32, 8)), model.policy_loss

    def same_noise(part: th.Tensor, noise_: th.Tensor | None = None, kl_states: int | None = None, **kwargs: Any) -> Any:
        start = next(offsets)
        return policy_loss(part, noise[start : start + part.shape[0]], kl_states, **kwargs)

    monkeypatch.setattr(model, "policy_loss", same_noise)
    actions = th.zeros(obs.shape[0], model.actor.action_dim)
    monkeypatch.setattr(model.replay_buffer, "sample", lambda n: SimpleNamespace(observations=obs, actions=actions))
    model.train(1, 32)
    for param, grad in zip(model.actor.parameters(), expected):
        assert th.allclose(param.grad, grad, atol=1e-6)


def test_q_term_sees_the_clipped_action_and_no_gradient_past_the_box(pendulum_id: str) -> None:
    """With ``clip_q_actions`` the Q term is the critic at the action predict returns; a sample past the box gets no
    gradient from Q (only from the KL term), so the critic cannot pull pi further off the data. Without it, Q sees
    the raw sample."""
    model = make_model(pendulum_id, kl_batch_size=1, grid_jitter=0.0)
    model.pretrain()
    model.critic.requires_grad_(False)
    obs, noise = th.randn(8, 3), th.full((8, 1), 6.0)  # far in the tail: the samples land past the bound
    actions = model.actor.sample(obs, noise, model.solve_config)
    assert (actions.abs() > 1.0).all()
    q_clipped = model.critic.q_value(obs, actions.clamp(-1, 1)).mean()
    q_raw = model.critic.q_value(obs, actions).mean()
    assert not th.isclose(q_clipped, q_raw)
    _, stats = model.policy_loss(obs, noise)
    assert th.isclose(stats["q"], q_clipped, atol=1e-5) and stats["outside_box_fraction"] == 1.0
    model.clip_q_actions = False
    assert th.isclose(model.policy_loss(obs, noise)[1]["q"], q_raw, atol=1e-5)

    # every sample past the box: the loss's gradient is the KL term's alone, whatever beta, unless Q sees raw samples
    def gradient(beta: float, clip: bool) -> th.Tensor:
        model.beta, model.clip_q_actions = beta, clip
        model.policy.optimizer.zero_grad()
        model.policy_loss(obs, noise)[0].backward()
        return th.cat([p.grad.flatten() for p in model.actor.parameters() if p.grad is not None])

    kl_only = gradient(0.0, True)
    assert th.allclose(gradient(10.0, True), kl_only, atol=1e-6)
    assert not th.allclose(gradient(10.0, False), kl_only, atol=1e-3)


def test_kl_in_bits_for_the_whole_action_is_d_times_the_per_dimension_kl() -> None:
    """``kl_per_dimension=False`` weighs the whole action's KL, so the tilt exp(beta ln2 Q) does not grow with d."""
    from tests.test_spaces import MatrixActionEnv, matrix_data

    model = GMPG("GenerativePolicy", MatrixActionEnv(), dataset=matrix_data(), **{**GMPG_TINY, "seed": 0, "grid_jitter": 0.0})
    model.learn(3)  # pi != mu, so the KL is not zero
    obs, noise = th.randn(16, 3), th.randn(16, 4)  # d = 4
    per_dimension = model.policy_loss(obs, noise)[1]["kl"]
    model.kl_per_dimension = False
    whole = model.policy_loss(obs, noise)[1]["kl"]
    assert per_dimension.abs() > 1e-4 and th.isclose(whole, 4 * per_dimension, rtol=1e-4)


def test_hutchinson_divergence_trains(pendulum_id: str) -> None:
    model = make_model(pendulum_id, divergence="hutchinson", grid_jitter=0.0).pretrain()
    before = copy.deepcopy(model.actor.state_dict())
    model.set_logger(configure(None, ["json"]))
    model.learn(2, log_interval=1)
    assert not th.equal(before["net.last.weight"], model.actor.net.last.weight)
    _, stats = model.policy_loss(th.randn(16, 3), th.randn(16, 1))
    assert model.solve_config.divergence == "hutchinson" and th.isfinite(stats["kl"])


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(divergence="trace"), "divergence"),
        (dict(gradient_method="magic"), "gradient_method"),
        (dict(gradient_solver="dopri5"), "fixed-grid"),
        (dict(grid_power=0.5), "grid_power"),
        (dict(n_gradient_steps=None), "n_gradient_steps"),
        (dict(grid_jitter=1.5), "grid_jitter"),
        (dict(grid_jitter=-0.1), "grid_jitter"),
    ],
)
def test_bad_options_raise(pendulum_id: str, kwargs, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match):
        make_model(pendulum_id, **kwargs)


def test_vpsde_uses_velocity_parameterization_for_flow_matching_bc(pendulum_id: str) -> None:
    model = make_model(pendulum_id, policy_kwargs={**TINY_POLICY, "generative_model": "vpsde"})
    assert model.actor.path.parameterization == "velocity" and model.policy.reference.path.parameterization == "velocity"
    model.learn(2)


def test_policy_gradient_trades_q_against_kl_as_beta_varies() -> None:
    """mu ~ N(0, 0.2^2) cloned from data, Q(s, a) = a. The optimum of E[-beta Q] + KL / (d ln 2) is mu tilted by
    exp(beta d ln2 a): the same Gaussian shifted by beta ln2 std(mu)^2. Larger beta moves actions further up Q, the
    KL term keeps the spread of mu."""
    rng = np.random.default_rng(0)
    n, s = 4000, 0.2
    data = dict(
        observations=np.zeros((n, 1), np.float32),
        actions=rng.normal(0, s, (n, 1)).astype(np.float32),
        rewards=np.zeros(n, np.float32),
        next_observations=np.zeros((n, 1), np.float32),
        terminals=np.zeros(n, bool),
        timeouts=np.zeros(n, bool),
    )
    th.manual_seed(0)
    model = GMPG(
        "GenerativePolicy",
        None,
        dataset=data,
        batch_size=128,
        bc_steps=1000,
        bc_learning_rate=3e-3,
        critic_steps=0,
        learning_rate=3e-3,
        seed=0,
        normalize_reward=False,
        policy_kwargs=dict(net_arch=[64, 64], time_embed_dim=16, cond_embed_dim=8, emb_dim=32),
    )
    model.pretrain()  # behaviour cloning and critic only
    model.critic.q_value = lambda obs, actions, reduction="min": actions[:, :1]  # type: ignore[method-assign]
    cloned = copy.deepcopy(model.policy.actor.state_dict())

    def tilt(beta: float) -> tuple[float, float, float]:
        model.policy.actor.load_state_dict(cloned)
        model.policy.optimizer = th.optim.Adam(model.policy.actor.parameters(), lr=3e-3)
        model.beta = beta
        model.learn(100)
        with th.no_grad():
            actions = model.policy.actor.sample(th.zeros(4000, 1)).squeeze(-1)
            _, stats = model.policy_loss(th.zeros(2000, 1))
        return actions.mean().item(), actions.std().item(), stats["kl"].item()

    results = {beta: tilt(beta) for beta in (0.0, 3.0, 10.0)}
    with th.no_grad():  # the cloned mu itself, against which the optimum is defined
        mu_actions = model.policy.reference.sample(th.zeros(4000, 1)).squeeze(-1)
    mu_mean, mu_std = mu_actions.mean().item(), mu_actions.std().item()
    shifts = {beta: mean - mu_mean for beta, (mean, _, _) in results.items()}
    assert abs(shifts[0.0]) < 0.05 and abs(results[0.0][2]) < 0.05  # beta = 0: pi stays mu
    assert 0.0 < shifts[3.0] < shifts[10.0]
    for beta in (3.0, 10.0):
        expected = beta * math.log(2.0) * mu_std**2
        assert 0.5 * expected < shifts[beta] < 1.6 * expected, (beta, shifts[beta], expected)
        assert 0.7 * mu_std < results[beta][1] < 1.3 * mu_std  # the KL keeps the spread of mu
    assert results[10.0][2] > results[3.0][2] > 0.0


def test_default_grid_and_saved_choices(pendulum_id: str) -> None:
    params = {key: value for key, value in GMPG_TINY.items() if key != "n_gradient_steps"}
    model = GMPG("GenerativePolicy", "Pendulum-v1", dataset=pendulum_id, **params)
    assert (model.n_gradient_steps, model.gradient_solver, model.grid_power, model.kl_batch_size) == (8, "rk4", 2.0, 256)
    model.n_gradient_steps, model.grid_power, model.kl_batch_size = 3, 1.5, None
    model.save("gmpg")
    loaded = GMPG.load("gmpg")
    assert (loaded.n_gradient_steps, loaded.grid_power, loaded.kl_batch_size) == (3, 1.5, None)  # saved choices kept


def test_kl_on_a_subset_of_the_states(pendulum_id: str) -> None:
    model = make_model(pendulum_id, grid_jitter=0.0, kl_batch_size=4)
    model.pretrain()
    with th.no_grad():  # move pi away from mu, so that the KL term is not zero
        for param in model.actor.parameters():
            param.add_(0.1 * th.randn_like(param))
    obs, noise = th.randn(8, 3), th.randn(8, 1)
    _, part = model.policy_loss(obs, noise)
    model.kl_batch_size = None
    _, full = model.policy_loss(obs, noise)
    _, first_half = model.policy_loss(obs[:4], noise[:4])
    assert th.allclose(part["q"], full["q"], atol=1e-5)  # Q on every state, same pathwise actions
    assert th.allclose(part["kl"], first_half["kl"], atol=1e-6)  # the KL on the first four only
    assert not th.allclose(part["kl"], full["kl"], atol=1e-6)
    assert th.allclose(model.policy_loss(obs, noise, kl_states=4)[1]["kl"], part["kl"], atol=1e-6)
    for value in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="kl_batch_size"):
            make_model(pendulum_id, kl_batch_size=value)


def test_chunks_share_the_kl_states(pendulum_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    model = make_model(pendulum_id, batch_size=8, chunk_size=4, kl_batch_size=4)
    model.pretrain()
    calls: list[tuple[int, int | None]] = []
    policy_loss = model.policy_loss

    def spy(obs: th.Tensor, noise: th.Tensor | None = None, kl_states: int | None = None, **kwargs: Any) -> Any:
        calls.append((obs.shape[0], kl_states))
        return policy_loss(obs, noise, kl_states, **kwargs)

    monkeypatch.setattr(model, "policy_loss", spy)
    model.learn(1)  # trains, gradients through both kinds of solve
    assert calls == [(4, 2), (4, 2)]  # two chunks of 4 states, each with half of the update's 4 KL states


def test_q_scale_divides_the_q_term(pendulum_id: str) -> None:
    """``beta`` with ``q_scale=s`` is ``beta / s`` on raw Q; "auto" divides by the spread it measured."""
    model = make_model(pendulum_id, grid_jitter=0.0, beta=4.0)
    model.pretrain()
    obs, noise = th.randn(8, 3), th.randn(8, 1)
    raw = model.policy_loss(obs, noise)[0]
    model.q_scale = 2.0
    halved = model.policy_loss(obs, noise)[0]
    model.q_scale, model.beta = None, 2.0
    assert th.isclose(halved, model.policy_loss(obs, noise)[0], atol=1e-6) and not th.isclose(raw, halved, atol=1e-4)
    model.q_scale, model.beta = "auto", 4.0
    auto = model.policy_loss(obs, noise)[0]  # measures the spread on first use
    assert model.q_scale_value is not None and model.q_scale_value > 0
    model.q_scale, model.beta = None, 4.0 / model.q_scale_value
    assert th.isclose(auto, model.policy_loss(obs, noise)[0], atol=1e-5)


def test_auto_q_scale_is_the_spread_of_q_over_mus_actions(pendulum_id: str) -> None:
    model = make_model(pendulum_id, grid_jitter=0.0, q_scale="auto")
    model.pretrain()
    obs, noise = th.randn(6, 3), 2.0 * th.randn(6, 5, 1)  # 5 samples of mu per state, some past the box
    with th.no_grad():
        actions = model.policy.reference.sample(obs.repeat_interleave(5, 0), noise.reshape(-1, 1), model.solve_config)
        q_value = model.critic.q_value(obs.repeat_interleave(5, 0), actions.clamp(-1, 1)).reshape(6, 5)
    expected = q_value.std(dim=1).mean().item()
    assert math.isclose(model.measure_q_spread(obs, noise), expected, rel_tol=1e-5)
    model.clip_q_actions = False  # then the spread is that of Q on the raw samples
    with th.no_grad():
        raw = model.critic.q_value(obs.repeat_interleave(5, 0), actions).reshape(6, 5).std(dim=1).mean().item()
    assert math.isclose(model.measure_q_spread(obs, noise), raw, rel_tol=1e-5) and not math.isclose(raw, expected)


def test_auto_q_scale_is_measured_once_logged_and_saved(pendulum_id: str, tmp_path: Any, monkeypatch: Any) -> None:
    model = make_model(pendulum_id, q_scale="auto")
    model.set_logger(configure(str(tmp_path / "log"), ["csv"]))
    model.learn(2)
    measured = model.q_scale_value
    assert measured is not None and measured > 0
    logged = np.genfromtxt(tmp_path / "log" / "progress.csv", delimiter=",", names=True)
    assert np.isclose(np.atleast_1d(logged["trainq_scale"])[-1], measured)
    model.save(tmp_path / "gmpg")
    for safe in (False, True):
        loaded = GMPG.load(tmp_path / "gmpg", safe=safe, dataset=pendulum_id)
        assert loaded.q_scale == "auto" and loaded.q_scale_value == measured

        def never(*args: Any, **kwargs: Any) -> float:
            raise AssertionError("measured again")

        monkeypatch.setattr(loaded, "measure_q_spread", never)
        if not safe:
            loaded.learn(1, reset_num_timesteps=False)  # continues with the saved unit
    description = model._description()
    description["state"]["q_scale_value"] = "1e9; import os"
    from sb3_generative.common.model_files import ModelFileError

    with pytest.raises(ModelFileError, match="q_scale_value"):
        model._restore_described_state(description["state"])


@pytest.mark.parametrize("value", ["big", 0.0, -1.0, math.inf, True, [1.0]])
def test_bad_q_scale_is_refused(value: Any) -> None:
    with pytest.raises(ValueError, match="q_scale must be None, 'auto' or a finite number > 0"):
        GMPG("GenerativePolicy", "Pendulum-v1", dataset="no/such/file.npz", q_scale=value)
