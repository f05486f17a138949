"""Numerical-fault guard: non-finite losses and gradients stop training with a clear error, and the model keeps
its last finite parameters.

Checks run on the device at every step (a flag and the first bad step, no host synchronisation) and are read on
the host only at log intervals, where a snapshot of the finite parameters and optimizer states is also taken. A
fault found there restores that snapshot and raises :class:`NonFiniteError` naming the value and the step.
"""

import copy
from typing import Any

import torch as th
from torch import nn


class NonFiniteError(FloatingPointError):
    """A loss or gradient became NaN or infinite during training."""


class FiniteGuard:
    """Watch values for NaN / inf and roll a module (and optimizers) back to the last checked finite state.

    :param module: the module whose parameters are protected (the whole policy)
    :param optimizers: optimizers whose state is protected with it
    """

    def __init__(self, module: nn.Module, optimizers: list[th.optim.Optimizer]) -> None:
        self.module, self.optimizers = module, optimizers
        self.first_bad: dict[str, th.Tensor] = {}
        self.snapshot: tuple[dict[str, th.Tensor], list[dict[str, Any]]] | None = None
        self.snapshot_label = "the start of training"

    def watch(self, step: int, values: dict[str, th.Tensor]) -> None:
        """Record, on the device, the first step at which each value was not finite.

        :param step: current step number
        :param values: named tensors (losses, gradient norms)
        """
        for key, value in values.items():
            bad = ~th.isfinite(value.detach()).all()
            previous = self.first_bad.get(key)
            if previous is None:
                previous = th.full((), -1, dtype=th.long, device=value.device)
            self.first_bad[key] = th.where(bad & (previous < 0), th.full_like(previous, step), previous)

    def check(self, phase: str, label: str) -> None:
        """Read the flags (one host synchronisation); on a fault, restore the snapshot and raise, else take one.

        :param phase: name of the training phase, for the message ("policy", "critic", "bc")
        :param label: description of the current point, for the next message (e.g. "policy step 200")
        """
        faults = {key: int(step) for key, step in ((k, v.item()) for k, v in self.first_bad.items()) if step >= 0}
        if faults:
            key, step = min(faults.items(), key=lambda item: item[1])
            self.first_bad = {}
            restored = self.restore()
            raise NonFiniteError(
                f"Non-finite {key} (NaN or inf) at {phase} step {step}: training stopped. "
                + (f"The parameters of {self.snapshot_label} were restored." if restored else "No finite snapshot exists.")
                + " Lower the learning rate, beta or the weight clamp, or look for extreme values in the data."
            )
        self.take_snapshot(label)

    def take_snapshot(self, label: str) -> None:
        """Keep a copy of the current (finite) parameters and optimizer states."""
        state = {k: v.detach().clone() for k, v in self.module.state_dict().items()}
        self.snapshot = (state, [copy.deepcopy(opt.state_dict()) for opt in self.optimizers])
        self.snapshot_label = label

    def restore(self) -> bool:
        """Put the snapshot back; False when there is none."""
        if self.snapshot is None:
            return False
        state, optimizer_states = self.snapshot
        self.module.load_state_dict(state)
        for optimizer, optimizer_state in zip(self.optimizers, optimizer_states, strict=True):
            optimizer.load_state_dict(optimizer_state)
        return True
