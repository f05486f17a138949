"""One value for the configuration of an ODE solve: steps, solver, grid, gradient method and divergence.

Every solve of a :class:`~sb3_generative.generative.model.GenerativeModel` (sampling, likelihood, both at once) takes
a :class:`SolveConfig`. It is validated once, when it is made, so a wrong setting fails where the user wrote it.
"""

import math
from dataclasses import dataclass, replace

from sb3_generative.generative.likelihood import DIVERGENCES
from sb3_generative.generative.solvers import ADAPTIVE_SOLVERS, FIXED_GRID_SOLVERS

GRADIENT_METHODS = ("backprop", "checkpoint", "adjoint")


@dataclass(frozen=True)
class SolveConfig:
    """How one ODE solve runs.

    :param n_steps: solver steps (None: the model's ``n_sampling_steps``)
    :param solver: "euler", "midpoint", "rk4" or a torchdiffeq adaptive method (None: the model's solver)
    :param grid_power: 1 for a uniform grid; p > 1 places the points at fractions ``1 - (1 - u)^p`` of the way to the
        data end (tau = 1), where a narrow conditional distribution makes the flow contract fastest
    :param grid_jitter: move the interior grid points randomly by up to this fraction of a step at every solve (0: a
        fixed grid; at most 1, so that neighbouring points never swap)
    :param gradient_method: with gradients, "backprop" through the solver's operations, "checkpoint" (recompute each
        step in the backward pass) or "adjoint" (torchdiffeq's adjoint method)
    :param divergence: likelihood solves only: "exact" (d vector-Jacobian products) or "hutchinson" (one probe)
    """

    n_steps: int | None = None
    solver: str | None = None
    grid_power: float = 1.0
    grid_jitter: float = 0.0
    gradient_method: str = "backprop"
    divergence: str = "exact"

    def __post_init__(self) -> None:
        if self.n_steps is not None and (
            isinstance(self.n_steps, bool) or not isinstance(self.n_steps, int) or self.n_steps < 1
        ):
            raise ValueError(f"n_steps must be a positive number of solver steps, got {self.n_steps!r}")
        if self.solver is not None:
            check_solver(self.solver)
        if not (isinstance(self.grid_power, (int, float)) and math.isfinite(self.grid_power) and self.grid_power > 0.0):
            raise ValueError(f"grid_power must be a positive finite number (1: uniform grid), got {self.grid_power!r}")
        if not (isinstance(self.grid_jitter, (int, float)) and 0.0 <= self.grid_jitter <= 1.0):
            raise ValueError(
                f"grid_jitter must be in [0, 1] (0: fixed grid; above 1 grid points could swap), got {self.grid_jitter!r}"
            )
        _check_choice("gradient_method", self.gradient_method, GRADIENT_METHODS)
        _check_choice("divergence", self.divergence, DIVERGENCES)

    @property
    def use_checkpoint(self) -> bool:
        """Whether gradients recompute each step (``gradient_method="checkpoint"``)."""
        return self.gradient_method == "checkpoint"

    @property
    def adjoint(self) -> bool:
        """Whether gradients come from torchdiffeq's adjoint method."""
        return self.gradient_method == "adjoint"

    def with_defaults(self, n_steps: int, solver: str) -> "SolveConfig":
        """This configuration with a model's default steps and solver filled in where unset.

        :param n_steps: the model's default number of steps
        :param solver: the model's default solver
        """
        return replace(self, n_steps=self.n_steps or n_steps, solver=self.solver or solver)

    def require_fixed_grid(self, name: str = "solver") -> "SolveConfig":
        """Raise unless the solver (if set) is a fixed-grid one (compilation, export, differentiable training).

        :param name: the name of the setting, for the message
        """
        if self.solver is not None and self.solver not in FIXED_GRID_SOLVERS:
            raise ValueError(f"{name} must be a fixed-grid solver {FIXED_GRID_SOLVERS}, got {self.solver!r}")
        return self


def check_solver(solver: str) -> str:
    """Validate a solver name.

    :param solver: "euler", "midpoint", "rk4" or a torchdiffeq method
    :return: the name
    """
    if solver not in FIXED_GRID_SOLVERS + ADAPTIVE_SOLVERS:
        raise ValueError(f"Unknown solver {solver!r}: expected one of {FIXED_GRID_SOLVERS + ADAPTIVE_SOLVERS}")
    return solver


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
