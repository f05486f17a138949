"""Deploy a trained generative policy without the training stack: the whole sampler as one ONNX or TorchScript program.

The exported program is what ``model.predict`` computes: observation normalisation, the unrolled fixed-grid ODE solve
(the model's ``n_sampling_steps`` and solver unless ``n_steps`` says otherwise), clipping to [-1, 1] and unscaling to
the action space's units. It takes a float32 tensor ``observation`` of shape ``(batch, *observation_shape)`` (any
batch) and returns a float32 tensor ``action`` of shape ``(batch, *action_shape)``. Exported with
``deterministic=False``, it takes a second input ``noise`` of shape ``(batch, action_dim)``, the solve's initial
point, so that the caller owns the randomness (``deterministic=True`` integrates from zero noise, as ``predict`` does).

    from sb3_generative.export import export_onnx
    export_onnx(model, "policy.onnx")
    # elsewhere, without torch:
    import onnxruntime
    session = onnxruntime.InferenceSession("policy.onnx")
    action = session.run(["action"], {"observation": obs.astype("float32")})[0]

A Dict observation space gives one input per key, named by the key (``{"observation": ..., "desired_goal": ...}``),
each of shape ``(batch, *key_shape)``; images are taken as stored (0 to 255, as floats) and scaled inside.

An adaptive torchdiffeq solver (its step count depends on the data) cannot be unrolled into a fixed program, and is
refused with :class:`ExportError`.
"""

import os
import pathlib
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from torch import nn

from sb3_generative.common.policies import GenerativeActorPolicy
from sb3_generative.generative.config import FIXED_GRID_SOLVERS, SolveConfig
from sb3_generative.generative.model import GenerativeModel
from sb3_generative.generative.solvers import integrate

PathLike = str | os.PathLike


class ExportError(ValueError):
    """A policy that cannot be exported as a fixed program (an adaptive solver, an unsupported space)."""


class SamplerProgram(nn.Module):
    """``observation [, noise] -> action`` in the action space's units: the policy's ``predict``, as one module.

    :param policy: a trained policy (GMPO's or GMPG's; copied, so later training does not change the program)
    :param deterministic: integrate from zero noise (else the module takes ``noise`` as its second input)
    :param n_steps: solver steps (None: the policy's ``n_sampling_steps``)
    """

    obs_mean: th.Tensor
    obs_std: th.Tensor
    low: th.Tensor
    high: th.Tensor

    def __init__(self, policy: GenerativeActorPolicy, deterministic: bool = True, n_steps: int | None = None) -> None:
        super().__init__()
        check_exportable(policy, n_steps)
        self.actor: GenerativeModel = _cpu_copy(policy.actor)
        self.deterministic = deterministic
        self.keys = [str(key) for key in policy.layout.keys] if policy.layout.is_dict else ["observation"]
        self.shapes = policy.layout.shapes
        self.config = SolveConfig(n_steps or policy.n_sampling_steps, policy.solver)
        self.action_shape = tuple(int(n) for n in policy.action_space.shape)  # type: ignore[union-attr]
        self.register_buffer("obs_mean", policy.obs_mean.detach().cpu().clone())
        self.register_buffer("obs_std", policy.obs_std.detach().cpu().clone())
        assert isinstance(policy.action_space, spaces.Box)
        self.register_buffer("low", th.as_tensor(policy.action_space.low.reshape(-1), dtype=th.float32))
        self.register_buffer("high", th.as_tensor(policy.action_space.high.reshape(-1), dtype=th.float32))

    def forward(self, *inputs: th.Tensor) -> th.Tensor:
        """The action for each observation (one input per key of a Dict), then the initial noise when exported
        stochastic."""
        parts, noise = inputs[: len(self.keys)], (inputs[len(self.keys)] if len(inputs) > len(self.keys) else None)
        flat = th.cat([part.reshape(part.shape[0], -1).float() for part in parts], dim=1)  # the stored rows' layout
        obs = (flat - self.obs_mean) / self.obs_std
        if noise is None:  # zero noise with the batch of obs, built without shape operators (a dynamic batch)
            noise = obs[:, :1] * 0.0 + th.zeros(1, self.actor.action_dim)
        scaled = self._solve(obs, noise).clamp(-1.0, 1.0)
        action = self.low + 0.5 * (scaled + 1.0) * (self.high - self.low)  # SB3's unscale_action
        return action.reshape((-1, *self.action_shape))

    def _solve(self, obs: th.Tensor, noise: th.Tensor) -> th.Tensor:
        """The fixed-grid solve from tau = 0 to 1, unrolled; each step evaluates the network at constant times.

        Not ``actor.sample``: its precomputed plan repeats the states by the batch size (``repeat`` with a Python
        int), which a trace would record as a constant and so fix the program's batch. Here every tensor takes its
        batch from the observation by broadcasting, and the steps are the same solver functions on the same grid.
        """
        actor, config = self.actor, self.config.with_defaults(self.actor.n_sampling_steps, self.actor.solver)
        obs = actor.encode(obs)
        cond = actor.net.cond_embed(obs)
        ones = obs[:, 0] * 0.0 + 1.0  # (B,) without shape operators

        def drift(tau: th.Tensor, state: tuple[th.Tensor, ...]) -> tuple[th.Tensor, ...]:
            t = actor.path.native_time(tau)
            out = actor.net.forward_projected(state[0], actor.net.projections(t * ones, obs, cond))
            return (actor.path.velocity(out, state[0], t),)

        grid = actor.solve_grid(config, 0.0, 1.0, obs.device)
        assert config.solver is not None
        (actions,) = integrate(drift, (noise,), grid, config.solver)
        return actions

    def example_inputs(self, batch_size: int = 2) -> tuple[th.Tensor, ...]:
        """Inputs of the right shapes, for tracing and checks."""
        observations = tuple(th.zeros(batch_size, *shape) for shape in self.shapes)
        return observations if self.deterministic else (*observations, th.zeros(batch_size, self.actor.action_dim))

    @property
    def input_names(self) -> list[str]:
        """``observation`` (a Dict's keys), and ``noise`` when stochastic."""
        return self.keys if self.deterministic else [*self.keys, "noise"]


def check_exportable(policy: Any, n_steps: int | None = None) -> None:
    """Raise :class:`ExportError` unless the policy's sampler can be written as a fixed program.

    :param policy: the policy
    :param n_steps: the requested solver steps
    """
    if not isinstance(policy, GenerativeActorPolicy):
        raise ExportError(f"Only sb3_generative's generative policies can be exported, got {type(policy).__name__}")
    if policy.solver not in FIXED_GRID_SOLVERS:
        raise ExportError(
            f"The policy samples with the adaptive solver {policy.solver!r}, whose number of steps depends on the data: "
            f"it cannot be unrolled into a fixed program. Use a fixed-grid solver {FIXED_GRID_SOLVERS} "
            "(policy_kwargs solver=...) to export"
        )
    if n_steps is not None and (isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 1):
        raise ExportError(f"n_steps must be a positive number of solver steps, got {n_steps!r}")
    if not hasattr(policy.actor.net, "forward_projected"):
        raise ExportError(f"The actor's network {type(policy.actor.net).__name__} is not the package's own network")


def _cpu_copy(actor: GenerativeModel) -> GenerativeModel:
    import copy

    clone = copy.deepcopy(actor).cpu().float().eval()
    clone.requires_grad_(False)
    clone._grids = {}  # grids cached on another device
    return clone


def _policy_of(model_or_policy: Any) -> GenerativeActorPolicy:
    return getattr(model_or_policy, "policy", model_or_policy)


def export_torchscript(model: Any, path: PathLike, deterministic: bool = True, n_steps: int | None = None) -> SamplerProgram:
    """Write the policy's sampler as a TorchScript program (``torch.jit.load(path)(observation[, noise])``).

    :param model: a trained GMPO / GMPG model, or its policy
    :param path: file to write (atomically)
    :param deterministic: from zero noise (True) or from a ``noise`` input (False)
    :param n_steps: solver steps (None: the model's)
    :return: the exported module (a PyTorch module computing the same)
    """
    program = SamplerProgram(_policy_of(model), deterministic, n_steps)
    with th.no_grad():
        traced = th.jit.trace(program, program.example_inputs(), check_trace=False)
    _atomic(path, lambda tmp: th.jit.save(traced, tmp))
    return program


def export_onnx(
    model: Any, path: PathLike, deterministic: bool = True, n_steps: int | None = None, opset_version: int = 17
) -> SamplerProgram:
    """Write the policy's sampler as an ONNX program with inputs ``observation`` (and ``noise``) and output ``action``.

    :param model: a trained GMPO / GMPG model, or its policy
    :param path: file to write (atomically)
    :param deterministic: from zero noise (True) or from a ``noise`` input (False)
    :param n_steps: solver steps (None: the model's)
    :param opset_version: ONNX opset
    :return: the exported module (a PyTorch module computing the same)
    """
    program = SamplerProgram(_policy_of(model), deterministic, n_steps)
    names = program.input_names
    axes = {name: {0: "batch"} for name in [*names, "action"]}

    def write(tmp: str) -> None:
        with th.no_grad():
            th.onnx.export(
                program,
                program.example_inputs(),
                tmp,
                input_names=names,
                output_names=["action"],
                dynamic_axes=axes,
                opset_version=opset_version,
                dynamo=False,
            )

    _atomic(path, write)
    return program


def _atomic(path: PathLike, write: Any) -> None:
    final = pathlib.Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    try:
        write(str(tmp))
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def run_onnx(path: PathLike, observation: np.ndarray | dict[str, np.ndarray], noise: np.ndarray | None = None) -> np.ndarray:
    """Run an exported ONNX program with onnxruntime (no torch needed by the program itself).

    :param path: the ``.onnx`` file
    :param observation: ``(batch, *observation_shape)`` observations, or a dict of them by key (a Dict space)
    :param noise: (batch, action_dim) initial noise, for a program exported with ``deterministic=False``
    :return: the actions
    """
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    given = observation if isinstance(observation, dict) else {"observation": observation}
    feed = {str(key): np.asarray(value, np.float32) for key, value in given.items()}
    if noise is not None:
        feed["noise"] = np.asarray(noise, np.float32)
    return session.run(["action"], feed)[0]
