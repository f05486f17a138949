"""The generative models alone: path targets, solvers, log-densities, and recovery of a toy distribution."""

import copy
import math

import pytest
import torch as th
from torch import nn

from sb3_generative.generative import GenerativeModel, GVPPath, ICFMPath, SolveConfig, VPSDEPath, make_path
from sb3_generative.generative.solvers import evaluation_times, integrate, uniform_grid


# ---------------------------------------------------------------------------------------------------------- paths
@pytest.mark.parametrize("path", [GVPPath(), VPSDEPath("velocity"), ICFMPath()], ids=["gvp", "vpsde-velocity", "icfm"])
def test_velocity_targets_are_time_derivatives_of_x_t(path) -> None:
    """The regression target equals d x_t / dt (central finite differences in float64)."""
    gen = th.Generator().manual_seed(0)
    a = th.rand(64, 3, generator=gen, dtype=th.float64) * 2 - 1
    noise = th.randn(64, 3 * path.noise_multiplier, generator=gen, dtype=th.float64)
    t = th.rand(64, generator=gen, dtype=th.float64) * 0.9 + 0.05
    h = 1e-6
    x_plus, _ = path.training_pair(a, noise, t + h)
    x_minus, _ = path.training_pair(a, noise, t - h)
    _, target = path.training_pair(a, noise, t)
    assert th.allclose(target, (x_plus - x_minus) / (2 * h), atol=1e-6)


def test_vpsde_noise_target_and_velocity_conversion() -> None:
    """eps-prediction: the target is the noise, and the ODE drift built from the true noise is -d x_t / dt."""
    path = VPSDEPath("noise")
    gen = th.Generator().manual_seed(1)
    a = th.rand(32, 2, generator=gen, dtype=th.float64) * 2 - 1
    eps = th.randn(32, 2, generator=gen, dtype=th.float64)
    t = th.rand(32, generator=gen, dtype=th.float64) * 0.9 + 0.05
    x_t, target = path.training_pair(a, eps, t)
    assert th.equal(target, eps)
    _, dx_dt = VPSDEPath("velocity").training_pair(a, eps, t)
    # sampling time runs the other way: dx/dtau = -dx/dt
    assert th.allclose(path.velocity(eps, x_t, t), -dx_dt, atol=1e-8)


def test_vpsde_schedule_endpoints() -> None:
    s, sigma, _, _ = VPSDEPath().scale(th.tensor([0.0, 1.0], dtype=th.float64))
    assert s[0] == pytest.approx(1.0) and sigma[0] == pytest.approx(0.0, abs=1e-5)
    assert s[1] == pytest.approx(math.exp(-0.25 * 19.9 - 0.05)) and sigma[1] == pytest.approx(1.0, abs=1e-4)


def test_unknown_model_and_parameterization_raise() -> None:
    with pytest.raises(ValueError, match="Unknown generative model"):
        make_path("ddpm")
    with pytest.raises(ValueError, match="parameterization"):
        make_path("gvp", "noise")


# ---------------------------------------------------------------------------------------------------------- solvers
@pytest.mark.parametrize(
    "method,steps,tol", [("euler", 2000, 2e-3), ("midpoint", 50, 1e-4), ("rk4", 20, 1e-7), ("dopri5", 2, 1e-5)]
)
def test_solvers_integrate_linear_ode(method: str, steps: int, tol: float) -> None:
    """dy/dt = -y from 1 gives exp(-1); every solver converges at its order."""
    y0 = (th.ones(3, dtype=th.float64),)
    (y1,) = integrate(lambda t, y: (-y[0],), y0, uniform_grid(0.0, 1.0, steps).double(), method)
    assert th.allclose(y1, th.full((3,), math.exp(-1.0), dtype=th.float64), atol=tol)


def test_checkpointed_solve_gives_same_gradients() -> None:
    weight = nn.Parameter(th.tensor([0.7]))
    grid = uniform_grid(0.0, 1.0, 16)
    grads = []
    for use_checkpoint in (False, True):
        weight.grad = None
        (y,) = integrate(lambda t, y: (th.tanh(weight * y[0]),), (th.ones(4),), grid, "rk4", use_checkpoint)
        y.sum().backward()
        grads.append(weight.grad.clone())
    assert th.allclose(grads[0], grads[1])


# ---------------------------------------------------------------------------------------------------------- likelihood
class GaussianGVPVelocity(nn.Module):
    """The exact GVP network output (velocity in native time) when the data is N(mu, s^2 I).

    x_t = c a + g eps with c = cos(pi t / 2), g = sin(pi t / 2); E[a | x] and E[eps | x] are linear in x.
    """

    def __init__(self, mu: th.Tensor, s: float) -> None:
        super().__init__()
        self.mu, self.s = mu, s

    def forward(self, t: th.Tensor, x: th.Tensor, obs: th.Tensor) -> th.Tensor:
        t = t.reshape(-1, 1) if t.dim() else t
        c, g = th.cos(0.5 * math.pi * t), th.sin(0.5 * math.pi * t)
        dc, dg = -0.5 * math.pi * g, 0.5 * math.pi * c
        var = c**2 * self.s**2 + g**2
        centred = x - c * self.mu
        mean_a = self.mu + c * self.s**2 / var * centred
        mean_eps = g / var * centred
        return dc * mean_a + dg * mean_eps


def gaussian_gvp_model(mu: th.Tensor, s: float) -> GenerativeModel:
    model = GenerativeModel(1, mu.shape[0], "gvp", net_arch=[4], n_sampling_steps=200, solver="rk4")
    model.net = GaussianGVPVelocity(mu, s)
    return model.double()


def gaussian_log_prob(a: th.Tensor, mu: th.Tensor, s: float) -> th.Tensor:
    d = a.shape[-1]
    return -0.5 * (((a - mu) / s) ** 2).sum(-1) - d * math.log(s) - 0.5 * d * math.log(2 * math.pi)


@pytest.mark.parametrize("divergence", ["exact", "hutchinson"])
def test_log_prob_of_gaussian_flow_matches_closed_form(divergence: str) -> None:
    th.manual_seed(0)
    mu, s = th.tensor([0.3, -0.5], dtype=th.float64), 0.4
    model = gaussian_gvp_model(mu, s)
    a = th.tensor([[0.1, -0.2], [0.6, -0.9], [0.3, -0.5]], dtype=th.float64)
    # Hutchinson: one probe per trajectory, unbiased; averaged over 500 probes per action
    repeats = 1 if divergence == "exact" else 500
    log_p = model.log_prob(
        a.repeat(repeats, 1), th.zeros(3 * repeats, 1, dtype=th.float64), SolveConfig(divergence=divergence)
    )
    log_p = log_p.view(repeats, 3).mean(0)
    tol = 1e-5 if divergence == "exact" else 0.1
    assert th.allclose(log_p, gaussian_log_prob(a, mu, s), atol=tol)


def test_log_prob_gradient_matches_closed_form_and_finite_differences() -> None:
    mu, s = th.tensor([0.3, -0.5], dtype=th.float64), 0.4
    model = gaussian_gvp_model(mu, s)
    a = th.tensor([[0.1, -0.2], [0.6, -0.9]], dtype=th.float64, requires_grad=True)
    obs = th.zeros(2, 1, dtype=th.float64)
    (grad,) = th.autograd.grad(model.log_prob(a, obs, with_grad=True).sum(), a)
    assert th.allclose(grad, -(a.detach() - mu) / s**2, atol=1e-4)
    h = 1e-5
    e0 = th.tensor([[h, 0.0], [0.0, 0.0]], dtype=th.float64)
    fd = (model.log_prob(a.detach() + e0, obs) - model.log_prob(a.detach() - e0, obs))[0] / (2 * h)
    assert grad[0, 0].item() == pytest.approx(fd.item(), abs=1e-5)


def test_forward_solve_log_prob_agrees_with_backward_solve() -> None:
    """``sample_with_log_prob`` (one solve from the noise) gives the density of the action it returns."""
    mu, s = th.tensor([0.3, -0.5], dtype=th.float64), 0.4
    model = gaussian_gvp_model(mu, s)
    obs = th.zeros(5, 1, dtype=th.float64)
    noise = th.randn(5, 2, generator=th.Generator().manual_seed(0), dtype=th.float64)
    actions, log_p = model.sample_with_log_prob(obs, noise)
    assert th.allclose(log_p, gaussian_log_prob(actions, mu, s), atol=1e-5)
    assert th.allclose(model.log_prob(actions, obs), log_p, atol=1e-5)


def test_sampler_maps_prior_to_the_gaussian() -> None:
    mu, s = th.tensor([0.3, -0.5], dtype=th.float64), 0.4
    model = gaussian_gvp_model(mu, s)
    model.n_sampling_steps = 31
    actions = model.sample(th.zeros(4000, 1, dtype=th.float64), noise=th.randn(4000, 2, dtype=th.float64))
    assert th.allclose(actions.mean(0), mu, atol=0.03)
    assert th.allclose(actions.std(0), th.full((2,), s, dtype=th.float64), atol=0.03)


# ---------------------------------------------------------------------------------------------------------- learning
@pytest.mark.parametrize("name", ["gvp", "vpsde", "icfm"])
def test_trained_model_recovers_a_conditional_bimodal_distribution(name: str) -> None:
    """p(a | s): a = +-0.6 (equal odds) plus 0.05 noise when s = 1, a = 0 when s = -1."""
    th.manual_seed(0)
    model = GenerativeModel(1, 1, name, net_arch=[64, 64], time_embed_dim=16, cond_embed_dim=16, emb_dim=32)
    optimizer = th.optim.Adam(model.parameters(), lr=3e-3)

    def batch(n: int) -> tuple[th.Tensor, th.Tensor]:
        s = th.randint(0, 2, (n, 1)).float() * 2 - 1
        mode = th.randint(0, 2, (n, 1)).float() * 1.2 - 0.6
        return s, th.where(s > 0, mode, th.zeros_like(mode)) + 0.05 * th.randn(n, 1)

    for _ in range(1500):
        s, a = batch(256)
        loss = model.per_sample_loss(a, s).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with th.no_grad():
        plus = model.sample(th.ones(2000, 1)).squeeze(-1)
        minus = model.sample(-th.ones(2000, 1)).squeeze(-1)
    # I-CFM keeps its path width sigma = 0.1 at the data end: modes are sqrt(0.05^2 + 0.1^2) wide there
    window = 0.3 if name == "icfm" else 0.2
    near_mode = ((plus - 0.6).abs() < window) | ((plus + 0.6).abs() < window)
    assert near_mode.float().mean() > 0.85
    assert 0.3 < (plus > 0).float().mean() < 0.7  # both modes, neither collapsed
    assert minus.abs().lt(window).float().mean() > 0.85


def test_jittered_grid_keeps_ends_and_order() -> None:
    model = GenerativeModel(1, 1, "gvp", net_arch=[4])
    grid = model.grid(8, 0.0, 1.0, th.device("cpu"))
    first, second = model.jittered(grid, 1.0), model.jittered(grid, 1.0)
    for jittered in (first, second):
        assert jittered[0] == 0.0 and jittered[-1] == 1.0 and bool((jittered.diff() > 0).all())
    assert not th.equal(first, second) and th.equal(model.jittered(grid, 0.0), grid)
    for bad in (1.5, -0.5):  # above 1 neighbouring points could swap; a negative jitter means nothing
        with pytest.raises(ValueError, match="grid_jitter"):
            model.sample(th.zeros(2, 1), config=SolveConfig(4, grid_jitter=bad))


def test_warped_grid_is_dense_at_the_data_end_in_both_directions() -> None:
    model = GenerativeModel(1, 1, "gvp", net_arch=[4])
    cpu = th.device("cpu")
    sampling, likelihood = model.grid(8, 0.0, 1.0, cpu, power=2.0), model.grid(8, 1.0, 0.0, cpu, power=2.0)
    assert th.allclose(likelihood, sampling.flip(0))  # one set of times, walked either way
    steps = sampling.diff()
    assert sampling[0] == 0.0 and sampling[-1] == 1.0 and bool((steps[1:] < steps[:-1]).all())
    assert model.grid(8, 0.0, 1.0, cpu, power=2.0) is sampling  # cached
    jittered = model.solve_grid(SolveConfig(8, grid_jitter=1.0, grid_power=2.0), 1.0, 0.0, cpu)
    assert jittered[0] == 1.0 and jittered[-1] == 0.0 and bool((jittered.diff() < 0).all())
    assert not th.equal(jittered, likelihood)
    with pytest.raises(ValueError, match="grid_power"):
        model.sample(th.zeros(2, 1), config=SolveConfig(4, grid_power=0.0))
    with pytest.raises(ValueError, match="grid_power"):
        model.sample(th.zeros(2, 1), config=SolveConfig(4, grid_power=-1.0, grid_jitter=1.0))


def test_warped_grid_makes_the_likelihood_of_a_narrow_distribution_accurate() -> None:
    """A narrow N(mu, 0.1^2) contracts the flow fastest at the data end: 8 RK4 steps on a uniform grid miss its
    log-density by nats, the same steps packed toward the data end (power 2) by hundredths; at the mode and 4
    standard deviations away (where a policy gradient can push samples), backward and forward solves."""
    mu, s = th.tensor([0.3, -0.5], dtype=th.float64), 0.1
    model = gaussian_gvp_model(mu, s)
    a = mu + s * th.tensor([[0.0, 0.0], [1.0, -1.0], [3.0, 2.0], [-4.0, 0.5]], dtype=th.float64)
    obs = th.zeros(4, 1, dtype=th.float64)
    noise = th.randn(4, 2, generator=th.Generator().manual_seed(0), dtype=th.float64)

    def errors(power: float) -> tuple[float, float]:
        backward = model.log_prob(a, obs, SolveConfig(8, "rk4", grid_power=power)) - gaussian_log_prob(a, mu, s)
        actions, log_p = model.sample_with_log_prob(obs, noise, SolveConfig(8, "rk4", grid_power=power))
        return backward.abs().max().item(), (log_p - gaussian_log_prob(actions, mu, s)).abs().max().item()

    uniform, warped = errors(1.0), errors(2.0)
    assert uniform[0] > 0.3 and warped[0] < 0.05
    assert warped[1] < 0.05 and warped[1] < uniform[1]


@pytest.mark.parametrize("method", ["euler", "midpoint", "rk4"])
def test_evaluation_times_are_where_the_solver_calls_the_drift(method: str) -> None:
    grid, called = GenerativeModel.warped(uniform_grid(0.0, 1.0, 5), 0.0, 1.0, 2.0), []

    def drift(t: th.Tensor, y: tuple[th.Tensor, ...]) -> tuple[th.Tensor, ...]:
        called.append(float(t))
        return (-y[0],)

    integrate(drift, (th.ones(1),), grid, method)
    assert th.allclose(evaluation_times(grid, method), th.tensor(called))


@pytest.mark.parametrize("name", ["gvp", "vpsde", "icfm"])
def test_precomputed_solves_match_the_step_by_step_solves(name: str) -> None:
    """Solves on a fixed grid compute the time-and-state part of the network for all their evaluation times at once;
    actions, log-densities and their gradients are those of the step-by-step solve, which is kept for batches too
    large to precompute, for checkpointing and for the adjoint."""
    th.manual_seed(0)
    model = GenerativeModel(5, 3, name, net_arch=[32, 16, 8])
    obs, noise = th.randn(7, 5), th.randn(7, 3)
    stepwise = copy.deepcopy(model)
    stepwise.PRECOMPUTE_LIMIT = 0  # nothing fits: every solve goes step by step
    for method in ("euler", "midpoint", "rk4"):
        assert model._precomputable(7, model.grid(6, 0.0, 1.0, obs.device), method)
        config = SolveConfig(6, method)
        assert th.allclose(model.sample(obs, noise, config), stepwise.sample(obs, noise, config), atol=1e-4)
    results = []
    for m in (model, stepwise):
        actions, log_pi = m.sample_with_log_prob(obs, noise, SolveConfig(4, "rk4", grid_power=2.0), with_grad=True)
        log_p = m.log_prob(actions, obs, SolveConfig(4, "rk4", grid_power=2.0), with_grad=True)
        loss = (actions.sum(-1) + log_pi - log_p).sum()
        results.append((actions, log_pi, log_p, th.autograd.grad(loss, list(m.parameters()))))
    for lean, step in zip(results[0][:3], results[1][:3]):
        assert th.allclose(lean, step, atol=1e-4)
    for lean, step in zip(results[0][3], results[1][3]):
        assert th.allclose(lean, step, atol=1e-3, rtol=1e-3)
    assert not model._precomputable(10**6, model.grid(31, 0.0, 1.0, obs.device), "euler")
    assert not model._precomputable(7, model.grid(6, 0.0, 1.0, obs.device), "dopri5")
