"""ODE solvers for sampling and likelihood.

Fixed-grid explicit solvers (Euler, midpoint, RK4) take a fixed number of steps on a uniform grid: no data-dependent
control flow and no host synchronisation, so a whole solve can be captured in a CUDA graph or compiled. Adaptive
solves go through torchdiffeq. The state is a tuple of tensors so that the likelihood's augmented ODE
(x, accumulated divergence) uses the same code.
"""

from collections.abc import Callable, Sequence

import torch as th
from torch.utils.checkpoint import checkpoint

State = tuple[th.Tensor, ...]
Drift = Callable[[th.Tensor, State], State]

FIXED_GRID_SOLVERS = ("euler", "midpoint", "rk4")
ADAPTIVE_SOLVERS = ("dopri5", "dopri8", "bosh3", "adaptive_heun", "fehlberg2")


def _axpy(y: State, h: th.Tensor | float, k: State) -> State:
    return tuple(a + h * b for a, b in zip(y, k))


def euler_step(f: Drift, t: th.Tensor, h: th.Tensor, y: State) -> State:
    """One explicit Euler step."""
    return _axpy(y, h, f(t, y))


def midpoint_step(f: Drift, t: th.Tensor, h: th.Tensor, y: State) -> State:
    """One explicit midpoint (RK2) step."""
    k1 = f(t, y)
    return _axpy(y, h, f(t + 0.5 * h, _axpy(y, 0.5 * h, k1)))


def rk4_step(f: Drift, t: th.Tensor, h: th.Tensor, y: State) -> State:
    """One classical fourth-order Runge-Kutta step."""
    k1 = f(t, y)
    k2 = f(t + 0.5 * h, _axpy(y, 0.5 * h, k1))
    k3 = f(t + 0.5 * h, _axpy(y, 0.5 * h, k2))
    k4 = f(t + h, _axpy(y, h, k3))
    return tuple(a + h / 6.0 * (b1 + 2.0 * b2 + 2.0 * b3 + b4) for a, b1, b2, b3, b4 in zip(y, k1, k2, k3, k4))


_STEPS = {"euler": euler_step, "midpoint": midpoint_step, "rk4": rk4_step}
#: where a step from t of size h evaluates the drift, in call order, as fractions of h
SOLVER_STAGES = {"euler": (0.0,), "midpoint": (0.0, 0.5), "rk4": (0.0, 0.5, 0.5, 1.0)}


def evaluation_times(grid: th.Tensor, method: str) -> th.Tensor:
    """The times at which a fixed-grid solve over ``grid`` calls its drift, in call order, shape (steps x stages,).

    Lets a caller compute everything that depends on time alone for the whole solve in one batched pass.

    :param grid: time points of the solve
    :param method: "euler", "midpoint" or "rk4"
    """
    stages = th.tensor(SOLVER_STAGES[method], device=grid.device, dtype=grid.dtype)
    return (grid[:-1, None] + grid.diff()[:, None] * stages).flatten()


def uniform_grid(t0: float, t1: float, n_steps: int, device: th.device | str = "cpu") -> th.Tensor:
    """The ``n_steps + 1`` points of a uniform grid from ``t0`` to ``t1`` (reference: ``linspace(0, 1, 32)``)."""
    if n_steps < 1:
        raise ValueError(f"an ODE solve needs at least one step, got n_steps={n_steps}")
    return th.linspace(t0, t1, n_steps + 1, device=device)


def integrate(
    f: Drift,
    y0: State,
    grid: th.Tensor,
    method: str = "euler",
    use_checkpoint: bool = False,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    adjoint_params: Sequence[th.Tensor] | None = None,
) -> State:
    """Integrate ``dy/dt = f(t, y)`` over ``grid`` and return the state at ``grid[-1]``.

    :param f: drift, mapping a scalar time tensor and a state tuple to a tuple of derivatives
    :param y0: initial state at ``grid[0]``
    :param grid: time points; fixed-grid methods step between consecutive points, adaptive ones only use the ends
    :param method: "euler", "midpoint", "rk4", or a torchdiffeq method name ("dopri5", ...)
    :param use_checkpoint: recompute each fixed-grid step in the backward pass instead of storing its activations
        (memory linear in the batch only, for long grids with gradients)
    :param rtol: relative tolerance of adaptive methods
    :param atol: absolute tolerance of adaptive methods
    :param adjoint_params: solve the backward pass by torchdiffeq's adjoint method with respect to these parameters
        (the same method on the same grid; None: backpropagate through the solver's operations)
    :return: the state at the last grid point
    """
    if method in _STEPS and adjoint_params is None:
        step = _STEPS[method]
        y = y0
        for t, h in zip(grid[:-1].unbind(), grid.diff().unbind()):  # two ops for the whole grid, none per step
            if use_checkpoint and th.is_grad_enabled():
                y = checkpoint(_checkpointed_step, step, f, t, h, len(y), *y, use_reentrant=False)
            else:
                y = step(f, t, h, y)
        return y
    return _integrate_torchdiffeq(f, y0, grid, method, rtol, atol, adjoint_params)


def _checkpointed_step(step: Callable, f: Drift, t: th.Tensor, h: th.Tensor, n: int, *y: th.Tensor) -> State:
    return step(f, t, h, tuple(y[:n]))


def _integrate_torchdiffeq(
    f: Drift,
    y0: State,
    grid: th.Tensor,
    method: str,
    rtol: float,
    atol: float,
    adjoint_params: Sequence[th.Tensor] | None,
) -> State:
    import torchdiffeq

    ends = th.stack([grid[0], grid[-1]])
    if method not in ADAPTIVE_SOLVERS:
        # a torchdiffeq fixed-grid method on our grid
        ends = grid
    if adjoint_params is not None:
        module = _DriftModule(f)
        out = torchdiffeq.odeint_adjoint(
            module, y0, ends, method=method, rtol=rtol, atol=atol, adjoint_params=tuple(adjoint_params)
        )
    else:
        out = torchdiffeq.odeint(f, y0, ends, method=method, rtol=rtol, atol=atol)
    return tuple(o[-1] for o in out)


class _DriftModule(th.nn.Module):
    """nn.Module wrapper of a drift closure, as ``torchdiffeq.odeint_adjoint`` requires."""

    def __init__(self, f: Drift) -> None:
        super().__init__()
        self.f = f

    def forward(self, t: th.Tensor, y: State) -> State:
        return self.f(t, y)
