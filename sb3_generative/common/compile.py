"""The ``torch_compile`` option: each phase's update and the sampler behind ``predict`` as compiled regions.

Regions are compiled with ``fullgraph=True`` (a graph break is an error, not a silent fallback) and with inductor's
``fallback_random``, so that random draws inside them (the matching loss's times and noise, GMPG's grid jitter) are
eager's: a compiled run gives eager's losses on the same batches and the same seed reproduces it. The optimizer step
stays outside: with Adam it is already one fused kernel for all parameters.
"""

from collections.abc import Callable
from typing import Any

import torch as th

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def check_compile_option(value: Any) -> bool | str:
    """Validate ``torch_compile``: False, True (torch.compile's default mode) or a mode name.

    :param value: the option
    :return: the option
    """
    if isinstance(value, bool) or value in COMPILE_MODES:
        return value
    raise ValueError(f"torch_compile must be False, True or one of {COMPILE_MODES} (a torch.compile mode), got {value!r}")


def compile_options(mode: bool | str) -> dict[str, Any]:
    """Inductor options of a mode, plus eager's random numbers.

    :param mode: True or a mode name
    """
    import torch._inductor

    name = "default" if mode is True else str(mode)
    return {**torch._inductor.list_mode_options(name), "fallback_random": True}


def compiled(function: Callable[..., Any], mode: bool | str, dynamic: bool | None = False) -> Callable[..., Any]:
    """``function`` compiled as one region (no graph breaks) in ``mode``; ``function`` itself when ``mode`` is False.

    :param function: the region (a pure function of tensors, or a bound method)
    :param mode: the ``torch_compile`` option
    :param dynamic: let shapes vary without recompiling (False: one graph per shape, as CUDA graphs need)
    """
    if mode is False:
        return function
    return th.compile(function, fullgraph=True, dynamic=dynamic, options=compile_options(mode))
