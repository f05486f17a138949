"""Numerical precision (full fp32, TF32 matrix products, or bf16 autocast) and CPU threads of the training updates.

TF32 (10-bit mantissa products, fp32 accumulation) is what Ampere-and-later GPUs are fast at and is the default on
CUDA; CPUs have no TF32, so "tf32" runs as fp32 there. "bf16" runs the networks under ``torch.autocast`` (matrix
products in bfloat16, reductions and the optimizer state in fp32; no loss scaling needed). The setting is applied
only for the duration of a ``learn`` call and restored afterwards, so it never leaks into the user's process.
"""

import contextlib
from collections.abc import Iterator

import torch as th

PRECISIONS = ("auto", "fp32", "tf32", "bf16")


def resolve_precision(precision: str, device: th.device) -> str:
    """The concrete precision: "auto" is "tf32" on CUDA and "fp32" elsewhere; "tf32" is "fp32" off CUDA.

    :param precision: one of ``PRECISIONS``
    :param device: training device
    :return: "fp32", "tf32" or "bf16"
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        precision = "tf32"
    if precision == "tf32" and device.type != "cuda":
        return "fp32"
    return precision


@contextlib.contextmanager
def precision_context(precision: str, device: th.device) -> Iterator[None]:
    """Run the enclosed updates at ``precision`` on ``device``; the global matmul settings are restored on exit.

    :param precision: one of ``PRECISIONS``
    :param device: training device
    """
    precision = resolve_precision(precision, device)
    saved = (th.backends.cuda.matmul.allow_tf32, th.backends.cudnn.allow_tf32)
    th.backends.cuda.matmul.allow_tf32 = th.backends.cudnn.allow_tf32 = precision == "tf32"
    try:
        if precision == "bf16":
            with th.autocast(device_type=device.type, dtype=th.bfloat16):
                yield
        else:
            yield
    finally:
        th.backends.cuda.matmul.allow_tf32, th.backends.cudnn.allow_tf32 = saved


@contextlib.contextmanager
def threads_context(threads: int | None) -> Iterator[None]:
    """Run the enclosed updates with ``threads`` torch CPU threads (None: as they are); restored on exit.

    :param threads: number of threads
    """
    if threads is None:
        yield
        return
    saved = th.get_num_threads()
    th.set_num_threads(threads)
    try:
        yield
    finally:
        th.set_num_threads(saved)
