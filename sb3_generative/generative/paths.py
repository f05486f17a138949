"""Probability paths of the three generative models of arXiv 2412.01245 (GenerativeRL's definitions).

Every path is seen by the rest of the package in one *sampling time* ``tau`` in [0, 1]: ``tau = 0`` is the
N(0, I) prior and ``tau = 1`` is the data. The network itself receives the path's own (native) time, as in the
reference code: for the diffusion paths (VP-SDE, GVP) the native time runs the other way, ``t = 1 - tau``
(t = 0 data, t = 1 noise); for I-CFM it is ``t = tau``.

A path provides:

- ``training_pair(actions, noise, t)``: the noisy point ``x_t`` and the regression target of the network;
- ``velocity(net_out, x, t)``: the probability-flow ODE drift ``dx/dtau`` expressed from the network output.
"""

import math
from abc import ABC, abstractmethod

import torch as th


class ProbabilityPath(ABC):
    """Base class of a Gaussian probability path between N(0, I) and the data.

    :param t_min: smallest native time drawn for training (reference: 1e-5)
    """

    #: name of what the network predicts: "noise" or "velocity"
    parameterization: str = "velocity"
    #: True when native time runs from data (t = 0) to noise (t = 1)
    reversed_time: bool = True
    #: standard normal draws per action dimension that one training pair consumes
    noise_multiplier: int = 1
    #: native time at which likelihood solves start on the data side (away from a singular drift)
    likelihood_t_min: float = 0.0

    def __init__(self, t_min: float = 1e-5) -> None:
        self.t_min = t_min

    def native_time(self, tau: th.Tensor) -> th.Tensor:
        """Native time of the path for a sampling time ``tau`` (0 = noise, 1 = data)."""
        return 1.0 - tau if self.reversed_time else tau

    def sample_time(self, n: int, device: th.device, generator: th.Generator | None = None) -> th.Tensor:
        """Training times ``t ~ U[t_min, 1]`` (reference: ``t ~ U[1e-5, 1]``)."""
        u = th.rand(n, device=device, generator=generator)
        return self.t_min + (1.0 - self.t_min) * u

    @abstractmethod
    def training_pair(self, actions: th.Tensor, noise: th.Tensor, t: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """Noisy input ``x_t`` and the network's regression target.

        :param actions: clean actions a, shape (B, d)
        :param noise: standard normal noise, shape (B, d)
        :param t: native times, shape (B,)
        :return: (x_t, target)
        """

    @abstractmethod
    def velocity(self, net_out: th.Tensor, x: th.Tensor, t: th.Tensor) -> th.Tensor:
        """Probability-flow ODE drift in sampling time, ``dx/dtau``, at native time ``t``.

        :param net_out: network output at (t, x)
        :param x: current point, shape (B, d)
        :param t: native time, scalar tensor or shape (B,)
        """


def _col(t: th.Tensor) -> th.Tensor:
    """Time as a column to broadcast against (B, d) tensors."""
    return t.reshape(-1, 1) if t.dim() > 0 else t


class GaussianDiffusionPath(ProbabilityPath):
    """A diffusion path ``x_t = s(t) a + sigma(t) eps`` with t = 0 data and t = 1 noise."""

    @abstractmethod
    def scale(self, t: th.Tensor) -> tuple[th.Tensor, th.Tensor, th.Tensor, th.Tensor]:
        """``(s(t), sigma(t), s'(t), sigma'(t))``."""

    def training_pair(self, actions: th.Tensor, noise: th.Tensor, t: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        s, sigma, ds, dsigma = (_col(v) for v in self.scale(t))
        x_t = s * actions + sigma * noise
        if self.parameterization == "noise":
            return x_t, noise
        # velocity matching: d x_t / dt = s'(t) a + sigma'(t) eps
        return x_t, ds * actions + dsigma * noise

    def velocity(self, net_out: th.Tensor, x: th.Tensor, t: th.Tensor) -> th.Tensor:
        if self.parameterization != "noise":
            return -net_out  # the network predicts dx/dt; tau = 1 - t (no time-dependent factor to compute)
        t = t.clamp(min=self.t_min)
        s, sigma, ds, dsigma = (_col(v) for v in self.scale(t))
        # From eps-prediction: a_hat = (x - sigma eps)/s, and dx/dt = s' a_hat + sigma' eps
        # (equivalently f(t) x + g(t)^2 eps / (2 sigma) for the VP-SDE's probability-flow ODE).
        return -(ds / s * x + (dsigma - ds * sigma / s) * net_out)  # tau = 1 - t


class VPSDEPath(GaussianDiffusionPath):
    """Linear VP-SDE, ``beta(t) = beta_0 + t (beta_1 - beta_0)`` with beta in [0.1, 20].

    ``s(t) = exp(-t^2 (beta_1 - beta_0)/4 - t beta_0 / 2)``, ``sigma(t) = sqrt(1 - s(t)^2)``. The network predicts
    the noise (GMPO's score matching, "vanilla" weighting) or, with ``parameterization="velocity"``, the path
    velocity (GMPG's flow-matching behaviour cloning). ``s'(t) = -(t (beta_1 - beta_0) / 2 + beta_0 / 2) s(t)``
    keeps the ``-beta_0 s / 2`` term that GenerativeRL's ``grl/numerical_methods/probability_path.py`` omits.

    :param parameterization: "noise" or "velocity"
    :param beta_0: beta at t = 0
    :param beta_1: beta at t = 1
    :param t_min: smallest training time
    """

    def __init__(
        self, parameterization: str = "noise", beta_0: float = 0.1, beta_1: float = 20.0, t_min: float = 1e-5
    ) -> None:
        super().__init__(t_min)
        if parameterization not in ("noise", "velocity"):
            raise ValueError(f"VP-SDE parameterization must be 'noise' or 'velocity', got {parameterization!r}")
        self.parameterization = parameterization
        self.beta_0, self.beta_1 = beta_0, beta_1
        # the VP-SDE drift grows like 1/sigma(t) near the data; the reference's likelihood grid starts at 1e-3
        self.likelihood_t_min = 1e-3

    def scale(self, t: th.Tensor) -> tuple[th.Tensor, th.Tensor, th.Tensor, th.Tensor]:
        log_s = -0.25 * t**2 * (self.beta_1 - self.beta_0) - 0.5 * t * self.beta_0
        s = th.exp(log_s)
        sigma = th.sqrt((1.0 - s**2).clamp(min=1e-12))
        ds = s * (-0.5 * t * (self.beta_1 - self.beta_0) - 0.5 * self.beta_0)
        dsigma = -s * ds / sigma
        return s, sigma, ds, dsigma


class GVPPath(GaussianDiffusionPath):
    """Trigonometric "generalised VP" path: ``s(t) = cos(pi t / 2)``, ``sigma(t) = sin(pi t / 2)``, velocity target.

    :param t_min: smallest training time
    """

    parameterization = "velocity"

    def scale(self, t: th.Tensor) -> tuple[th.Tensor, th.Tensor, th.Tensor, th.Tensor]:
        half_pi = 0.5 * math.pi
        s, sigma = th.cos(half_pi * t), th.sin(half_pi * t)
        return s, sigma, -half_pi * sigma, half_pi * s


class ICFMPath(ProbabilityPath):
    """Independent conditional flow matching: ``x_t = (1 - t) x0 + t a + sigma eps``, target ``a - x0``.

    Native time equals sampling time (t = 0 noise, t = 1 data); ``t ~ U[0, 1]``. The ``noise`` argument of
    :meth:`training_pair` must hold two standard normal draws side by side, shape (B, 2d): x0 and eps.

    :param sigma: constant width of the conditional path (reference: 0.1)
    """

    reversed_time = False
    parameterization = "velocity"
    noise_multiplier = 2

    def __init__(self, sigma: float = 0.1) -> None:
        super().__init__(t_min=0.0)
        self.sigma = sigma

    def training_pair(self, actions: th.Tensor, noise: th.Tensor, t: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        x0, eps = noise.chunk(2, dim=-1)
        t = _col(t)
        x_t = (1.0 - t) * x0 + t * actions + self.sigma * eps
        return x_t, actions - x0

    def velocity(self, net_out: th.Tensor, x: th.Tensor, t: th.Tensor) -> th.Tensor:
        return net_out


def make_path(name: str, parameterization: str | None = None) -> ProbabilityPath:
    """Build a path from its name.

    :param name: "vpsde", "gvp" or "icfm"
    :param parameterization: for "vpsde" only: "noise" (default) or "velocity"
    :return: the path
    """
    key = name.lower().replace("-", "").replace("_", "")
    if key == "vpsde":
        return VPSDEPath(parameterization or "noise")
    if parameterization not in (None, "velocity"):
        raise ValueError(
            f"Generative model {name!r} predicts velocities; parameterization {parameterization!r} is unsupported"
        )
    if key == "gvp":
        return GVPPath()
    if key == "icfm":
        return ICFMPath()
    raise ValueError(f"Unknown generative model {name!r}: expected one of 'vpsde', 'gvp', 'icfm'")
