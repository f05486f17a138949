"""Numerical-fault guard: non-finite losses and gradients stop training with a clear error, and the model goes back
to its last checked finite state.

Checks run on the device at every step (a flag and the first bad step, no host synchronisation) and are read on the
host only at log intervals. There the parameters and optimizer states are themselves checked finite (one more
synchronisation) before they become the snapshot; so a snapshot never holds what an infinite learning rate wrote into
the weights. A restore rolls back everything the snapshot holds: parameters (targets and buffers included),
optimizer states, and the algorithm's own state (step counters and random-number states), so a retry repeats the
lost steps instead of skipping them.
"""

import copy
from collections.abc import Callable
from typing import Any

import torch as th
from torch import nn


class NonFiniteError(FloatingPointError):
    """A loss, gradient or parameter became NaN or infinite during training."""


def optimizer_tensors(optimizer: th.optim.Optimizer) -> list[th.Tensor]:
    """The floating-point tensors of an optimizer's state (moments, ...)."""
    return [v for state in optimizer.state.values() for v in state.values() if th.is_tensor(v) and v.is_floating_point()]


def all_finite(tensors: list[th.Tensor]) -> bool:
    """Whether every tensor is finite (one host synchronisation for all of them)."""
    if not tensors:
        return True
    return bool(th.stack([th.isfinite(t).all().to(tensors[0].device) for t in tensors]).all())


class FiniteGuard:
    """Watch values for NaN / inf and roll a module, its optimizers and the owner's state back to the last check.

    :param module: the module whose parameters and buffers are protected (the whole policy)
    :param optimizers: optimizers whose state is protected with it
    :param get_state: returns the owner's extra state to snapshot (counters, random-number states)
    :param set_state: puts such a state back
    """

    def __init__(
        self,
        module: nn.Module,
        optimizers: list[th.optim.Optimizer],
        get_state: Callable[[], dict[str, Any]] | None = None,
        set_state: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.module, self.optimizers = module, optimizers
        self.get_state, self.set_state = get_state, set_state
        self.first_bad: dict[str, th.Tensor] = {}
        self.snapshot: tuple[dict[str, th.Tensor], list[dict[str, Any]], dict[str, Any]] | None = None
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

    def pending(self) -> bool:
        """Whether steps were watched since the last check."""
        return bool(self.first_bad)

    def check(self, phase: str, label: str) -> None:
        """Read the flags and check the parameters; on a fault, restore the snapshot and raise, else take one.

        :param phase: name of the training phase, for the message ("policy", "critic", "behaviour-cloning")
        :param label: description of the current point, for the next message (e.g. "policy step 200")
        """
        faults = {key: int(step) for key, step in ((k, v.item()) for k, v in self.first_bad.items()) if step >= 0}
        self.first_bad = {}
        if faults:
            key, step = min(faults.items(), key=lambda item: item[1])
            self._fail(f"Non-finite {key} (NaN or inf) at {phase} step {step}")
        if not self.state_is_finite():
            self._fail(f"Non-finite parameters or optimizer state (NaN or inf) at {label}")
        self.take_snapshot(label)

    def _fail(self, what: str) -> None:
        restored = self.restore()
        raise NonFiniteError(
            f"{what}: training stopped. "
            + (f"The state of {self.snapshot_label} was restored." if restored else "No finite snapshot exists.")
            + " Lower the learning rate, beta or the weight clamp, or look for extreme values in the data."
        )

    def state_is_finite(self) -> bool:
        """Whether every parameter, buffer and optimizer state tensor is finite (one host synchronisation)."""
        tensors = [t for t in self.module.state_dict().values() if t.is_floating_point()]
        for optimizer in self.optimizers:
            tensors.extend(optimizer_tensors(optimizer))
        return all_finite(tensors)

    def take_snapshot(self, label: str) -> None:
        """Keep a copy of the current parameters, optimizer states and owner state (checked by :meth:`check`)."""
        state = {k: v.detach().clone() for k, v in self.module.state_dict().items()}
        extra = copy.deepcopy(self.get_state()) if self.get_state is not None else {}
        self.snapshot = (state, [copy.deepcopy(opt.state_dict()) for opt in self.optimizers], extra)
        self.snapshot_label = label

    def restore(self) -> bool:
        """Put the snapshot back; False when there is none."""
        if self.snapshot is None:
            return False
        state, optimizer_states, extra = self.snapshot
        self.module.load_state_dict(state)
        for optimizer, optimizer_state in zip(self.optimizers, optimizer_states, strict=True):
            optimizer.load_state_dict(copy.deepcopy(optimizer_state))
        if self.set_state is not None:
            self.set_state(copy.deepcopy(extra))
        return True
