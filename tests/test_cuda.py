"""The CUDA path: run by benchmarks/gpu_check.sh on a GPU machine (``pytest -m cuda``); skipped without a GPU."""

import numpy as np
import pytest
import torch as th

from sb3_generative import GMPG, GMPO
from tests.helpers import ALGOS, TINY_POLICY, make_model

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not th.cuda.is_available(), reason="needs a CUDA device")]
POLICY = {**TINY_POLICY, "n_sampling_steps": 4}
FAST = {GMPO: {}, GMPG: dict(n_gradient_steps=2, gradient_solver="euler")}


def cuda_model(cls, pendulum_id: str, **kwargs):  # type: ignore[no-untyped-def]
    return make_model(cls, pendulum_id, device="cuda", policy_kwargs=POLICY, **{**FAST[cls], **kwargs})


@pytest.mark.parametrize("cls", ALGOS)
@pytest.mark.parametrize("generative_model", ["vpsde", "gvp", "icfm"])
def test_train_save_load_predict_on_cuda(cls, generative_model: str, pendulum_id: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = cuda_model(cls, pendulum_id, policy_kwargs={**POLICY, "generative_model": generative_model}).learn(4)
    buffer = model.replay_buffer
    assert buffer is not None and buffer.observations.is_cuda and buffer.generator.device.type == "cuda"
    assert all(p.is_cuda for p in model.policy.parameters())
    obs = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    actions, _ = model.predict(obs, deterministic=True)
    model.save(tmp_path / "model")
    on_cuda, on_cpu = cls.load(tmp_path / "model", device="cuda"), cls.load(tmp_path / "model", device="cpu")
    np.testing.assert_allclose(on_cuda.predict(obs, deterministic=True)[0], actions, atol=1e-5)
    np.testing.assert_allclose(on_cpu.predict(obs, deterministic=True)[0], actions, atol=1e-3)
    on_cuda.learn(2, reset_num_timesteps=False)
    assert on_cuda.num_timesteps == 6


@pytest.mark.parametrize("cls", ALGOS)
@pytest.mark.parametrize("mode", [True, "reduce-overhead"])
def test_compiled_equals_eager_on_cuda(cls, mode, pendulum_id: str) -> None:  # type: ignore[no-untyped-def]
    eager = cuda_model(cls, pendulum_id, precision="fp32").learn(3)
    fast = cuda_model(cls, pendulum_id, precision="fp32", torch_compile=mode).learn(3)
    for key, value in eager.policy.state_dict().items():
        assert th.allclose(value, fast.policy.state_dict()[key], atol=1e-4, rtol=1e-3), key
    obs = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    np.testing.assert_allclose(fast.predict(obs, deterministic=True)[0], eager.predict(obs, deterministic=True)[0], atol=1e-4)


@pytest.mark.parametrize("cls", ALGOS)
@pytest.mark.parametrize("precision", ["tf32", "bf16"])
def test_precision_modes_train_on_cuda(cls, precision: str, pendulum_id: str) -> None:  # type: ignore[no-untyped-def]
    before = th.backends.cuda.matmul.allow_tf32
    model = cuda_model(cls, pendulum_id, precision=precision).learn(3, log_interval=1)
    assert all(th.isfinite(p).all() for p in model.policy.parameters())
    assert th.backends.cuda.matmul.allow_tf32 == before  # the global setting is restored
