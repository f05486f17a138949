"""``beta="auto"``: beta adapted as a Lagrange multiplier on a budget, as SB3's SAC adapts ``ent_coef="auto"``.

GMPG's objective is ``-beta Q + KL(pi || mu)``: the Lagrangian of "maximise Q subject to KL(pi || mu) <= target_kl"
with multiplier ``1 / beta``. Dual descent on ``log beta`` with the loss ``log_beta * (KL - target_kl)`` lowers beta
while pi is further from mu than the budget and raises it while pi is closer, so KL settles at the budget whatever
the task's Q scale. GMPO's weights ``exp(beta A)`` concentrate as beta grows: the loss
``-log_beta * (ESS - target_ess)`` keeps the effective sample size of the weights (a share of the batch) at the
budget. As in SAC, ``"auto"`` starts at 1 and ``"auto_<x>"`` at x; ``log_beta`` and its optimizer are saved with
the model and rolled back with the parameters.
"""

import math

import torch as th


def parse_beta(beta: float | str) -> tuple[bool, float]:
    """``(adaptive, initial value)`` of a ``beta`` setting: a finite number >= 0, ``"auto"`` or ``"auto_<x>"`` (x > 0).

    :param beta: the setting
    :return: whether beta adapts, and its (initial) value
    """
    if isinstance(beta, str):
        if beta == "auto":
            return True, 1.0
        if beta.startswith("auto_"):
            try:
                initial = float(beta[len("auto_") :])
            except ValueError:
                initial = math.nan
            if math.isfinite(initial) and initial > 0.0:
                return True, initial
        raise ValueError(f"beta must be a number >= 0, 'auto' or 'auto_<initial value > 0>' (as SAC's ent_coef), got {beta!r}")
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not math.isfinite(beta) or beta < 0.0:
        raise ValueError(f"beta must be a number >= 0, 'auto' or 'auto_<initial value > 0>' (as SAC's ent_coef), got {beta!r}")
    return False, float(beta)


def make_log_beta(initial: float, learning_rate: float, device: th.device) -> tuple[th.Tensor, th.optim.Optimizer]:
    """The adapted ``log beta`` and its Adam optimizer (SAC's ``log_ent_coef`` and ``ent_coef_optimizer``).

    :param initial: beta's initial value
    :param learning_rate: the optimizer's learning rate (a step moves log beta by about this much)
    :param device: where it lives
    """
    log_beta = th.tensor(math.log(initial), device=device, requires_grad=True)
    return log_beta, th.optim.Adam([log_beta], lr=learning_rate)


def dual_step(
    log_beta: th.Tensor, optimizer: th.optim.Optimizer, measured: th.Tensor, target: float, grows_with_beta: bool
) -> None:
    """One step of dual descent on ``log beta`` toward ``measured == target`` (on the device, no host sync).

    :param log_beta: the adapted parameter
    :param optimizer: its optimizer
    :param measured: the budgeted quantity on this step's batch (GMPG's KL, GMPO's effective sample size)
    :param target: the budget
    :param grows_with_beta: whether the quantity rises with beta (KL) or falls (the effective sample size)
    """
    sign = 1.0 if grows_with_beta else -1.0
    loss = sign * log_beta * (measured.detach() - target)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
