"""Log-densities of a continuous-time generative model by the instantaneous change of variables.

Along the probability-flow ODE ``dx/dtau = v(x, tau)`` (tau = 0 prior, tau = 1 data) the log-density obeys
``d log p(x_tau) / dtau = -div v(x_tau, tau)`` (Chen et al. 2018, eq. 2; paper's GMPG likelihood). Hence

    log p_1(a) = log N(x_0; 0, I) - int_0^1 div v(x_tau, tau) dtau,

with x_tau the ODE trajectory through a. The divergence is exact by default: one forward pass and d
vector-Jacobian products batched into one vectorised backward pass, which is cheap for the 3 to 8 action
dimensions of locomotion. Hutchinson's estimator
``eps^T (dv/dx) eps`` (one probe per trajectory) is the option for wide action spaces. With ``create_graph=True``
the divergence is itself differentiable, so gradients with respect to parameters and to the action flow through
the whole augmented ODE (exact, unlike the reference, which detaches the state).
"""

import math
from collections.abc import Callable

import torch as th

Velocity = Callable[[th.Tensor, th.Tensor], th.Tensor]  # (tau, x) -> dx/dtau

DIVERGENCES = ("exact", "hutchinson")


def _needs_input_grad(x: th.Tensor) -> th.Tensor:
    """``x`` as a node of the current graph to differentiate against (a clone keeps gradients flowing back to
    ``x``; a view made under ``no_grad``, as torchdiffeq's adjoint pass makes, could not be differentiated)."""
    return x.clone() if x.requires_grad else x.detach().requires_grad_(True)


def exact_divergence(velocity: Velocity, tau: th.Tensor, x: th.Tensor, create_graph: bool) -> tuple[th.Tensor, th.Tensor]:
    """Velocity and its exact divergence at (tau, x).

    One forward pass at batch B, then the d vector-Jacobian products against the basis vectors e_1..e_d in one
    vectorised backward pass (``is_grads_batched``: autograd under ``vmap``); the diagonal of the stacked rows is the
    Jacobian's trace. This costs about 1 + 2d network passes, against 3d for repeating the batch d times, with the
    same few kernel launches.

    :param velocity: maps (tau, x) to dx/dtau, row by row
    :param tau: sampling time (scalar tensor)
    :param x: points, shape (B, d)
    :param create_graph: keep the graph of the divergence (needed to differentiate it)
    :return: (v(x), div v(x)) of shapes (B, d) and (B,)
    """
    batch, dim = x.shape
    if th.compiler.is_compiling():  # torch.compile traces functional transforms, not requires_grad_ on intermediates
        return _exact_divergence_functional(velocity, tau, x)
    with th.enable_grad():
        x_in = _needs_input_grad(x)
        v = velocity(tau, x_in)
        probes = th.eye(dim, device=x.device, dtype=v.dtype).unsqueeze(1).expand(dim, batch, dim)
        (jac_rows,) = th.autograd.grad(v, x_in, grad_outputs=probes, create_graph=create_graph, is_grads_batched=True)
    # jac_rows[i, b, j] = d v_i / d x_j at row b; the divergence is the sum over i = j
    return v, th.diagonal(jac_rows, dim1=0, dim2=2).sum(-1)


def _exact_divergence_functional(velocity: Velocity, tau: th.Tensor, x: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
    """:func:`exact_divergence` written with ``torch.func`` (the same products): the form torch.compile captures
    without graph breaks; the result stays differentiable with respect to the network's parameters."""
    dim = x.shape[-1]
    v, vjp_fn = th.func.vjp(lambda x_: velocity(tau, x_), x)  # type: ignore[misc]
    probes = th.eye(dim, device=x.device, dtype=v.dtype).unsqueeze(1).expand(dim, *x.shape)
    (jac_rows,) = th.func.vmap(vjp_fn)(probes)
    return v, th.diagonal(jac_rows, dim1=0, dim2=2).sum(-1)


def hutchinson_divergence(
    velocity: Velocity, tau: th.Tensor, x: th.Tensor, create_graph: bool, probe: th.Tensor
) -> tuple[th.Tensor, th.Tensor]:
    """Velocity and Hutchinson's unbiased divergence estimate ``eps^T (dv/dx) eps`` at (tau, x).

    :param velocity: maps (tau, x) to dx/dtau
    :param tau: sampling time
    :param x: points, shape (B, d)
    :param create_graph: keep the graph of the estimate
    :param probe: Gaussian or Rademacher probes, shape (B, d)
    :return: (v(x), estimate of div v(x))
    """
    if th.compiler.is_compiling():  # the functional form, as in exact_divergence
        v, vjp_fn = th.func.vjp(lambda x_: velocity(tau, x_), x)  # type: ignore[misc]
        (vjp,) = vjp_fn(probe)
        return v, (vjp * probe).sum(-1)
    with th.enable_grad():
        x_in = _needs_input_grad(x)
        v = velocity(tau, x_in)
        (vjp,) = th.autograd.grad((v * probe).sum(), x_in, create_graph=create_graph)
    return v, (vjp * probe).sum(-1)


def standard_normal_log_prob(z: th.Tensor) -> th.Tensor:
    """``log N(z; 0, I)`` summed over the last dimension."""
    return -0.5 * (z**2).sum(-1) - 0.5 * z.shape[-1] * math.log(2.0 * math.pi)


def augmented_drift(
    velocity: Velocity, divergence: str, create_graph: bool, probe: th.Tensor | None = None
) -> Callable[[th.Tensor, tuple[th.Tensor, ...]], tuple[th.Tensor, th.Tensor]]:
    """Drift of the augmented state ``(x, int div v)`` for the solvers.

    :param velocity: maps (tau, x) to dx/dtau
    :param divergence: "exact" or "hutchinson"
    :param create_graph: keep the graph (gradients of the log-density)
    :param probe: Hutchinson probes (required for "hutchinson")
    :return: f(tau, (x, acc)) = (v, div v)
    """
    if divergence not in DIVERGENCES:
        raise ValueError(f"divergence must be one of {DIVERGENCES}, got {divergence!r}")
    if divergence == "hutchinson" and probe is None:
        raise ValueError("the Hutchinson estimator needs a probe tensor")

    def drift(tau: th.Tensor, state: tuple[th.Tensor, ...]) -> tuple[th.Tensor, th.Tensor]:
        if divergence == "exact":
            return exact_divergence(velocity, tau, state[0], create_graph)
        return hutchinson_divergence(velocity, tau, state[0], create_graph, probe)  # type: ignore[arg-type]

    return drift
