"""Optimizer defaults shared by the actor, the critic and behaviour cloning."""

from typing import Any

import torch as th

#: optimizers with a fused implementation (one kernel for all parameters, on CPU and CUDA)
FUSABLE = (th.optim.Adam, th.optim.AdamW)


def optimizer_kwargs(optimizer_class: type[th.optim.Optimizer], kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """``kwargs`` with ``fused=True`` added for Adam and AdamW unless the caller set ``fused`` (or ``foreach``).

    The fused step updates every parameter in one kernel (on a GPU it saves a launch per parameter tensor; the CPU
    figures are in the project's benchmark results). Pass ``fused=False`` to turn it off.

    :param optimizer_class: the optimizer
    :param kwargs: the caller's arguments
    :return: the arguments to construct it with
    """
    kwargs = dict(kwargs or {})
    if optimizer_class in FUSABLE and "fused" not in kwargs and "foreach" not in kwargs:
        kwargs["fused"] = True
    return kwargs
