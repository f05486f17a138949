"""Export of the whole sampler to ONNX and TorchScript: equal to predict, for every generative model and algorithm."""

import numpy as np
import pytest
import torch as th

from sb3_generative.export import ExportError, export_onnx, export_torchscript, run_onnx
from tests.helpers import ALGOS, TINY_POLICY, make_model
from tests.test_spaces import MatrixActionEnv, matrix_data

pytest.importorskip("onnxruntime")
TOLERANCE = 1e-5  # absolute, in action units


@pytest.fixture(scope="module", params=[(cls, gm) for cls in ALGOS for gm in ("vpsde", "gvp", "icfm")],
                ids=lambda p: f"{p[0].__name__}-{p[1]}")  # fmt: skip
def trained(request, pendulum_id: str):  # type: ignore[no-untyped-def]
    cls, generative_model = request.param
    policy_kwargs = {**TINY_POLICY, "generative_model": generative_model}
    return make_model(cls, pendulum_id, normalize_observations=True, policy_kwargs=policy_kwargs).learn(3)


def observations(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 3)).astype(np.float32)


def test_onnx_and_torchscript_equal_predict(trained, tmp_path) -> None:  # type: ignore[no-untyped-def]
    export_onnx(trained, tmp_path / "policy.onnx")
    export_torchscript(trained, tmp_path / "policy.pt")
    scripted = th.jit.load(str(tmp_path / "policy.pt"))
    for batch in (1, 33):
        obs = observations(batch, seed=batch)
        expected, _ = trained.predict(obs, deterministic=True)
        np.testing.assert_allclose(run_onnx(tmp_path / "policy.onnx", obs), expected, atol=TOLERANCE, rtol=0)
        np.testing.assert_allclose(scripted(th.as_tensor(obs)).numpy(), expected, atol=TOLERANCE, rtol=0)


def test_stochastic_export_equals_the_sampler_with_the_same_noise(trained, tmp_path) -> None:  # type: ignore[no-untyped-def]
    export_onnx(trained, tmp_path / "stochastic.onnx", deterministic=False)
    export_torchscript(trained, tmp_path / "stochastic.pt", deterministic=False)
    obs, noise = observations(9), np.random.default_rng(1).normal(size=(9, 1)).astype(np.float32)
    policy = trained.policy
    with th.no_grad():
        raw = policy.actor.sample(policy.normalize_obs(th.as_tensor(obs)), noise=th.as_tensor(noise)).clamp(-1, 1)
    expected = policy.unscale_action(raw.numpy())
    np.testing.assert_allclose(run_onnx(tmp_path / "stochastic.onnx", obs, noise), expected, atol=TOLERANCE, rtol=0)
    scripted = th.jit.load(str(tmp_path / "stochastic.pt"))
    np.testing.assert_allclose(scripted(th.as_tensor(obs), th.as_tensor(noise)).numpy(), expected, atol=TOLERANCE, rtol=0)
    assert not np.allclose(expected, trained.predict(obs, deterministic=True)[0])  # the noise matters


def test_fewer_steps_equal_predict_with_those_steps(pendulum_id: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = make_model(ALGOS[0], pendulum_id).learn(2)
    export_onnx(model, tmp_path / "five.onnx", n_steps=5)
    obs = observations(4)
    model.policy.actor.n_sampling_steps = 5
    expected, _ = model.predict(obs, deterministic=True)
    np.testing.assert_allclose(run_onnx(tmp_path / "five.onnx", obs), expected, atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("cls", ALGOS)
def test_actions_of_several_dimensions_keep_their_shape(cls, tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = make_model(cls, matrix_data(), env=MatrixActionEnv()).learn(1)
    export_onnx(model, tmp_path / "matrix.onnx")
    obs = observations(3)
    expected, _ = model.predict(obs, deterministic=True)
    actions = run_onnx(tmp_path / "matrix.onnx", obs)
    assert actions.shape == (3, 2, 2)
    np.testing.assert_allclose(actions, expected, atol=TOLERANCE, rtol=0)


def test_what_cannot_be_a_fixed_program_is_refused(pendulum_id: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    adaptive = make_model(ALGOS[0], pendulum_id, policy_kwargs={**TINY_POLICY, "solver": "dopri5"})
    with pytest.raises(ExportError, match="adaptive solver 'dopri5'"):
        export_onnx(adaptive, tmp_path / "adaptive.onnx")
    assert not (tmp_path / "adaptive.onnx").exists()
    fixed = make_model(ALGOS[0], pendulum_id)
    with pytest.raises(ExportError, match="n_steps"):
        export_torchscript(fixed.policy, tmp_path / "x.pt", n_steps=0)
