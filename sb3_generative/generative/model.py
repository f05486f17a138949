"""A conditional generative model of actions: a probability path plus a network, behind three calls.

The RL algorithms reach it only through :meth:`GenerativeModel.per_sample_loss`, :meth:`GenerativeModel.sample`,
:meth:`GenerativeModel.log_prob` (and :meth:`GenerativeModel.sample_with_log_prob`), so swapping VP-SDE, GVP or
I-CFM changes nothing on the RL side. It knows nothing of RL.
"""

from collections.abc import Callable
from typing import Any

import torch as th
from torch import nn

from sb3_generative.generative.likelihood import augmented_drift, standard_normal_log_prob
from sb3_generative.generative.networks import TemporalSpatialResidualNet
from sb3_generative.generative.paths import ProbabilityPath, make_path
from sb3_generative.generative.config import SolveConfig
from sb3_generative.generative.solvers import FIXED_GRID_SOLVERS, SOLVER_STAGES, evaluation_times, integrate, uniform_grid

GENERATIVE_MODELS = ("vpsde", "gvp", "icfm")


class GenerativeModel(nn.Module):
    """Conditional diffusion / flow model ``p(a | s)`` with a fixed-grid ODE sampler and exact likelihood.

    :param obs_dim: size of the conditioning state
    :param action_dim: size of the generated action
    :param generative_model: "vpsde", "gvp" or "icfm"
    :param parameterization: VP-SDE only: "noise" (GMPO default) or "velocity" (GMPG's flow-matching BC)
    :param net_arch: widths of the U-shaped residual network (paper: [512, 256, 128])
    :param time_embed_dim: Gaussian-Fourier time features
    :param cond_embed_dim: state embedding size
    :param emb_dim: merged time-and-condition embedding size
    :param n_sampling_steps: default number of solver steps (reference: 31 Euler steps, a 32-point grid)
    :param solver: default solver: "euler", "midpoint", "rk4" or a torchdiffeq adaptive method
    :param encoder: a module mapping the states given to every call to the ``obs_dim`` conditioning features (a
        features extractor, trained with the model); None: the states are the features
    """

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        generative_model: str = "gvp",
        parameterization: str | None = None,
        net_arch: list[int] | tuple[int, ...] = (512, 256, 128),
        time_embed_dim: int = 32,
        cond_embed_dim: int = 32,
        emb_dim: int = 128,
        n_sampling_steps: int = 31,
        solver: str = "euler",
        encoder: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.path: ProbabilityPath = make_path(generative_model, parameterization)
        self.obs_dim, self.action_dim = obs_dim, action_dim
        SolveConfig(n_sampling_steps, solver)  # validates both
        self.n_sampling_steps, self.solver = n_sampling_steps, solver
        self.net = TemporalSpatialResidualNet(
            action_dim, obs_dim, net_arch, time_embed_dim=time_embed_dim, cond_embed_dim=cond_embed_dim, emb_dim=emb_dim
        )
        self._grids: dict[tuple[Any, ...], th.Tensor] = {}

    # ------------------------------------------------------------------ training
    def per_sample_loss(self, actions: th.Tensor, obs: th.Tensor, generator: th.Generator | None = None) -> th.Tensor:
        """Matching loss of each sample, ``0.5 * sum_dims (f_theta(t, x_t, s) - target)^2``, shape (B,).

        :param actions: dataset actions in [-1, 1], shape (B, d)
        :param obs: states, shape (B, n)
        :param generator: random generator for t and the noise (None: torch's global one)
        """
        batch = actions.shape[0]
        t = self.path.sample_time(batch, actions.device, generator)
        noise = th.randn(
            batch,
            self.action_dim * self.path.noise_multiplier,
            device=actions.device,
            dtype=actions.dtype,
            generator=generator,
        )
        x_t, target = self.path.training_pair(actions, noise, t)
        return 0.5 * ((self.net(t, x_t, self.encode(obs)) - target) ** 2).sum(-1)

    def encode(self, obs: th.Tensor) -> th.Tensor:
        """The conditioning features of states: the ``encoder``'s output, or the states themselves."""
        return obs if self.encoder is None else self.encoder(obs)

    # ------------------------------------------------------------------ ODE
    def velocity(self, tau: th.Tensor, x: th.Tensor, obs: th.Tensor, cond: th.Tensor | None = None) -> th.Tensor:
        """Probability-flow velocity ``dx/dtau`` (tau = 0 noise, tau = 1 data).

        :param cond: the network's state embedding of ``obs``, computed once per solve (None: computed here)
        """
        t = self.path.native_time(tau)
        out = self.net(t, x, obs) if cond is None else self.net(t, x, obs, cond)
        return self.path.velocity(out, x, t)

    def grid(self, n_steps: int, start: float, end: float, device: th.device, power: float = 1.0) -> th.Tensor:
        """A cached grid from ``start`` to ``end`` (no allocation per call once built).

        :param power: 1 for a uniform grid; p > 1 packs the points toward the data end (tau = 1, where a narrow
            conditional distribution makes the flow contract fastest) as ``1 - (1 - u)^p`` of a uniform ``u``
        """
        key = (n_steps, start, end, str(device), power)
        if key not in self._grids:
            self._grids[key] = self.warped(uniform_grid(0.0, 1.0, n_steps, device), start, end, power)
        return self._grids[key]

    @staticmethod
    def warped(u: th.Tensor, start: float, end: float, power: float) -> th.Tensor:
        """Map increasing fractions ``u`` in [0, 1] onto a solve from ``start`` to ``end``, dense at the data end.

        :param u: increasing fractions, 0 and 1 included
        :param start: first time (noise end 0 for sampling, the data end for a likelihood solve)
        :param end: last time
        :param power: grid exponent (1: uniform)
        """
        if power != 1.0:  # the data end is tau = 1: the end of a sampling solve, the start of a likelihood solve
            u = u.pow(power) if start > end else 1.0 - (1.0 - u).pow(power)
        return start + (end - start) * u

    def solve_grid(self, config: SolveConfig, start: float, end: float, device: th.device) -> th.Tensor:
        """The grid of one solve: cached when fixed, redrawn (before the warp) when ``config.grid_jitter > 0``.

        :param config: the solve's configuration, with its steps set
        :param start: first time
        :param end: last time
        :param device: device
        """
        assert config.n_steps is not None
        if config.grid_jitter == 0.0:
            return self.grid(config.n_steps, start, end, device, config.grid_power)
        unit = self.jittered(self.grid(config.n_steps, 0.0, 1.0, device), config.grid_jitter)
        return self.warped(unit, start, end, config.grid_power)

    def jittered(self, grid: th.Tensor, jitter: float) -> th.Tensor:
        """The grid with each interior point moved uniformly by up to ``jitter / 2`` of a step (ends fixed).

        Training through a solve on a fixed grid lets a network put structure between the evaluation times that no
        solve sees (for GMPG: a fake negative KL); a grid drawn anew for each solve removes that loophole.
        """
        if jitter <= 0.0 or grid.shape[0] <= 2:
            return grid
        step = grid[1] - grid[0]
        noise = (th.rand(grid.shape[0] - 2, device=grid.device) - 0.5) * jitter * step
        return th.cat([grid[:1], grid[1:-1] + noise, grid[-1:]])

    def data_end(self) -> float:
        """Where a likelihood solve starts: the data end of the path, kept a little away from a singular drift
        (VP-SDE)."""
        # the likelihood starts at the data end of the path, kept a little away from a singular drift (VP-SDE)
        return 1.0 - self.path.likelihood_t_min if self.path.reversed_time else 1.0

    def _resolve(self, config: SolveConfig | None) -> SolveConfig:
        """``config`` with this model's default steps and solver filled in (the model's sampling solve if None)."""
        return (config or SolveConfig()).with_defaults(self.n_sampling_steps, self.solver)

    def _noise(self, obs: th.Tensor, noise: th.Tensor | None) -> th.Tensor:
        if noise is None:
            return th.randn(obs.shape[0], self.action_dim, device=obs.device, dtype=obs.dtype)
        return noise

    def sample(
        self, obs: th.Tensor, noise: th.Tensor | None = None, config: SolveConfig | None = None, with_grad: bool = False
    ) -> th.Tensor:
        """Actions by integrating the ODE from the prior to the data, shape (B, d).

        :param obs: states, shape (B, n)
        :param noise: initial points (B, d); None draws N(0, I)
        :param config: how to solve (None: the model's ``n_sampling_steps`` and ``solver`` on a uniform grid)
        :param with_grad: keep the graph for pathwise gradients (GMPG)
        """
        config = self._resolve(config)
        noise = self._noise(obs, noise)
        grid = self.solve_grid(config, 0.0, 1.0, obs.device)
        with th.set_grad_enabled(with_grad):
            velocity = self._velocity_plan(obs, grid, config)

            def drift(tau: th.Tensor, state: tuple[th.Tensor, ...]) -> tuple[th.Tensor, ...]:
                return (velocity(tau, state[0]),)

            (actions,) = self._integrate(drift, (noise,), grid, config)
        return actions

    #: most elements the precomputed projections of one solve may hold (64 MiB in fp32)
    PRECOMPUTE_LIMIT = 1 << 24

    def _precomputable(self, batch_size: int, grid: th.Tensor, method: str) -> bool:
        """Whether a solve can precompute the network's time-and-state part (:meth:`_velocity_plan`): our network,
        a fixed-grid solver and projections for every evaluation time small enough to hold at once."""
        if method not in FIXED_GRID_SOLVERS or not hasattr(self.net, "forward_projected"):
            return False
        widths = sum(block.fc1.out_features for block in self.net.blocks)
        return (grid.shape[0] - 1) * len(SOLVER_STAGES[method]) * batch_size * widths <= self.PRECOMPUTE_LIMIT

    def _velocity_plan(
        self, obs: th.Tensor, grid: th.Tensor, config: SolveConfig
    ) -> Callable[[th.Tensor, th.Tensor], th.Tensor]:
        """The velocity ``(tau, x) -> dx/dtau`` of one solve over ``grid`` for fixed states.

        When it can (see :meth:`_precomputable`; not with checkpointing or the adjoint, whose backward passes call the
        drift again), the time-and-state part of the network is computed for every evaluation time of the solve in
        one batched pass, in the current grad mode, and each call runs only the layers that see the action: the same
        numbers with about a third fewer operators per call. Otherwise the state embedding is computed once.
        """
        assert config.solver is not None
        obs = self.encode(obs)  # once per solve, in the current grad mode
        recomputes = th.is_grad_enabled() and (config.use_checkpoint or config.adjoint)
        if recomputes or not self._precomputable(obs.shape[0], grid, config.solver):
            cond = self._condition(obs, config.adjoint and th.is_grad_enabled())
            return lambda tau, x: self.velocity(tau, x, obs, cond)
        times = evaluation_times(grid, config.solver)
        n_evals, batch_size = times.shape[0], obs.shape[0]
        t = self.path.native_time(times).repeat_interleave(batch_size)
        cond = self.net.cond_embed(obs).repeat(n_evals, 1)
        projections = [p.view(n_evals, batch_size, -1).unbind() for p in self.net.projections(t, obs, cond)]
        calls = iter(range(n_evals))  # the solver evaluates the drift exactly at ``times``, in this order

        def velocity(tau: th.Tensor, x: th.Tensor) -> th.Tensor:
            k = next(calls)
            out = self.net.forward_projected(x, [p[k] for p in projections])
            return self.path.velocity(out, x, self.path.native_time(tau))

        return velocity

    def _condition(self, obs: th.Tensor, adjoint: bool) -> th.Tensor | None:
        """The network's state embedding, computed once for a whole solve (the same at every step). None when the
        network has no ``cond_embed`` (a user's own network) or for the adjoint method, whose backward pass only
        sees what the drift computes."""
        cond_embed = getattr(self.net, "cond_embed", None)
        return None if adjoint or cond_embed is None else cond_embed(obs)

    def _probe(self, like: th.Tensor, divergence: str) -> th.Tensor | None:
        return th.randn_like(like) if divergence == "hutchinson" else None

    def _integrate(
        self, drift: Callable[..., tuple[th.Tensor, ...]], y0: tuple[th.Tensor, ...], grid: th.Tensor, config: SolveConfig
    ) -> tuple[th.Tensor, ...]:
        with_grad = th.is_grad_enabled()
        adjoint_params = self._adjoint(config.adjoint and with_grad)
        assert config.solver is not None
        return integrate(drift, y0, grid, config.solver, config.use_checkpoint and with_grad, adjoint_params=adjoint_params)

    def log_prob(
        self, actions: th.Tensor, obs: th.Tensor, config: SolveConfig | None = None, with_grad: bool = False
    ) -> th.Tensor:
        """``log p(a | s)`` by integrating the augmented ODE from the action back to the prior, shape (B,).

        :param actions: actions in [-1, 1], shape (B, d)
        :param obs: states, shape (B, n)
        :param config: how to solve, including the divergence (None: the model's sampling solve, exact divergence)
        :param with_grad: differentiable with respect to parameters and ``actions``
        """
        config = self._resolve(config)
        grid = self.solve_grid(config, self.data_end(), 0.0, obs.device)
        acc0 = th.zeros(actions.shape[0], device=actions.device, dtype=actions.dtype)
        with th.set_grad_enabled(with_grad):
            velocity = self._velocity_plan(obs, grid, config)
            drift = augmented_drift(velocity, config.divergence, with_grad, self._probe(actions, config.divergence))
            z, neg_int_div = self._integrate(drift, (actions, acc0), grid, config)
        # integrating from tau = 1 to 0 accumulates -int_0^1 div v dtau
        return standard_normal_log_prob(z) + neg_int_div

    def sample_with_log_prob(
        self, obs: th.Tensor, noise: th.Tensor | None = None, config: SolveConfig | None = None, with_grad: bool = False
    ) -> tuple[th.Tensor, th.Tensor]:
        """Actions and their own log-density in one forward solve: ``log p(a) = log N(z) - int_0^1 div v``.

        Cheaper than :meth:`sample` then :meth:`log_prob` (one solve instead of two); both are pathwise
        differentiable with ``with_grad=True``. Arguments as in :meth:`sample` and :meth:`log_prob`.

        :return: (actions (B, d), log p(actions | obs) (B,))
        """
        config = self._resolve(config)
        noise = self._noise(obs, noise)
        grid = self.solve_grid(config, 0.0, 1.0, obs.device)
        acc0 = th.zeros(noise.shape[0], device=noise.device, dtype=noise.dtype)
        with th.set_grad_enabled(with_grad):
            velocity = self._velocity_plan(obs, grid, config)
            drift = augmented_drift(velocity, config.divergence, with_grad, self._probe(noise, config.divergence))
            actions, int_div = self._integrate(drift, (noise, acc0), grid, config)
        return actions, standard_normal_log_prob(noise) - int_div

    def _adjoint(self, adjoint: bool) -> list[th.Tensor] | None:
        return [p for p in self.parameters() if p.requires_grad] if adjoint else None

    def extra_repr(self) -> str:
        return f"path={type(self.path).__name__}, solver={self.solver}, n_sampling_steps={self.n_sampling_steps}"
