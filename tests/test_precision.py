"""The precision option: fp32 / tf32 / bf16 autocast give training curves that agree within seed-to-seed noise."""

from typing import Any

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.logger import KVWriter, Logger

from sb3_generative import GMPG, GMPO
from sb3_generative.common.precision import resolve_precision
from tests.conftest import TINY


class CurveWriter(KVWriter):
    """Keeps the logged values of one key, one per dump."""

    def __init__(self, key: str) -> None:
        self.key, self.values = key, []  # type: ignore[var-annotated]

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, Any], step: int = 0) -> None:
        if self.key in key_values:
            self.values.append(float(key_values[self.key]))


def curve(pendulum_id: str, precision: str, seed: int, steps: int = 400) -> np.ndarray:
    model = GMPO("GenerativePolicy", "Pendulum-v1", dataset=pendulum_id, precision=precision, seed=seed, device="cpu",
                 learning_rate=1e-3, **TINY)  # fmt: skip
    writer = CurveWriter("train/matching_loss")
    model.set_logger(Logger(folder=None, output_formats=[writer]))
    model.learn(steps, log_interval=50)
    return np.array(writer.values)


def test_resolve_precision() -> None:
    cpu, cuda = th.device("cpu"), th.device("cuda")
    assert resolve_precision("auto", cpu) == "fp32" and resolve_precision("auto", cuda) == "tf32"
    assert resolve_precision("tf32", cpu) == "fp32"  # CPUs have no TF32
    assert resolve_precision("bf16", cpu) == "bf16" and resolve_precision("fp32", cuda) == "fp32"


def test_unknown_precision_is_refused_at_construction(pendulum_id: str) -> None:
    with pytest.raises(ValueError, match="precision must be one of"):
        GMPO("GenerativePolicy", "Pendulum-v1", dataset=pendulum_id, precision="fp16", **TINY)


def test_training_curves_agree_across_precisions(pendulum_id: str) -> None:
    flags = (th.backends.cuda.matmul.allow_tf32, th.backends.cudnn.allow_tf32)
    fp32, fp32_other_seed = curve(pendulum_id, "fp32", 0), curve(pendulum_id, "fp32", 1)
    tf32, bf16 = curve(pendulum_id, "tf32", 0), curve(pendulum_id, "bf16", 0)
    assert len(fp32) == 8
    np.testing.assert_array_equal(tf32, fp32)  # TF32 is fp32 on a CPU
    assert not np.array_equal(bf16, fp32)  # autocast really ran the products in bf16
    noise = np.abs(fp32_other_seed - fp32).max()
    assert np.abs(bf16 - fp32).max() <= 3.0 * noise + 0.02, (bf16, fp32, fp32_other_seed)
    assert (th.backends.cuda.matmul.allow_tf32, th.backends.cudnn.allow_tf32) == flags  # nothing leaks


def test_gmpg_runs_under_bf16(pendulum_id: str) -> None:
    model = GMPG("GenerativePolicy", "Pendulum-v1", dataset=pendulum_id, bc_steps=5, precision="bf16", **TINY)
    model.learn(2)
    assert all(th.isfinite(p).all() for p in model.actor.parameters())
