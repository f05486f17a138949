"""Base class of the offline algorithms: SB3's ``BaseAlgorithm`` trained by gradient steps on a fixed dataset.

It follows sb3-contrib's ARS in subclassing ``BaseAlgorithm`` directly: ``num_timesteps`` counts policy gradient
steps, with one ``callback.on_step()`` each, so ``EvalCallback``, ``CheckpointCallback``, ``log_interval`` and the
progress bar all speak in gradient steps. The environment is never stepped; it is kept for evaluation callbacks and
RL Zoo, so a ``VecEnv`` of several copies is accepted. The dataset lives on the training device in an
:class:`~sb3_generative.common.buffers.OfflineReplayBuffer` and never goes into a saved zip.

Before the policy updates, :meth:`OfflineAlgorithm.pretrain` runs the pre-training phases (the IQL critic; for GMPG
also behaviour cloning), each a :class:`~sb3_generative.common.phases.Phase` run by one loop.
"""

import contextlib
import contextvars
import importlib
import inspect
import io
import os
import pathlib
import sys
import time
import warnings
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar, TypeVar

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, ConvertCallback
from stable_baselines3.common.save_util import load_from_zip_file
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, ReplayBufferSamples, Schedule, TensorDict
from stable_baselines3.common.utils import configure_logger
from stable_baselines3.common.vec_env import VecNormalize, unwrap_vec_wrapper

from sb3_generative.common.adaptive_beta import make_log_beta, parse_beta
from sb3_generative.common.buffers import OfflineReplayBuffer
from sb3_generative.common.checks import check_bool, check_float, check_int, check_learning_rate
from sb3_generative.common.compile import check_compile_option, compiled
from sb3_generative.common.datasets import (
    SUPPORTED_SPACES,
    DatasetError,
    OfflineData,
    UnsupportedSpaceError,
    check_against_spaces,
    check_supported_spaces,
    load_offline_data,
    locomotion_reward_scale,
    normalized_score,
    observation_statistics,
)
from sb3_generative.common.guard import FiniteGuard, NonFiniteError
from sb3_generative.common.model_files import (
    ModelFileError,
    check_saved_by,
    plain_settings,
    policy_kwargs_from_json,
    policy_kwargs_to_json,
    read_model_zip,
    space_from_json,
    space_to_json,
    write_description,
)
from sb3_generative.common.phases import NamedProgressBar, Phase, PhaseProgress, accumulate, means
from sb3_generative.common.policies import GenerativeActorPolicy, check_policy_kwargs
from sb3_generative.common.precision import precision_context, resolve_precision, threads_context
from sb3_generative.critics.d3rlpy_q import architecture, check_copied_q, d3rlpy_critic_state, is_d3rlpy_algo
from sb3_generative.critics.iql import IQLCritic

SelfOfflineAlgorithm = TypeVar("SelfOfflineAlgorithm", bound="OfflineAlgorithm")
#: true while ``load`` reads a file: only then may ``set_parameters`` fill in an object an older file lacks
_LOADING_FILE: contextvars.ContextVar[bool] = contextvars.ContextVar("sb3_generative_loading_file", default=False)
#: constructor arguments that are not settings of a saved model (objects, the data, where it runs)
_NOT_DESCRIBED = (
    "torch_compile",
    "self",
    "policy",
    "env",
    "dataset",
    "critic",
    "policy_kwargs",
    "device",
    "download",
    "tensorboard_log",
    "_init_setup_model",
)


class OfflineAlgorithm(BaseAlgorithm):
    """An SB3 algorithm that learns from a fixed dataset with an IQL critic and a generative actor.

    ``learn(total_timesteps)`` first runs the pre-training phases (:meth:`pretrain`), once over the model's life,
    then ``total_timesteps`` policy gradient steps. Subclasses set their own attributes, call this constructor, then
    call :meth:`_setup_model` last (as SAC does).

    :param policy: policy class or alias ("GenerativePolicy", "MlpPolicy")
    :param env: environment or its id, used for evaluation callbacks (never stepped; a ``VecEnv`` of several copies
        is fine); None recovers it from a Minari dataset, else spaces come from the data
    :param learning_rate: actor learning rate (constant or schedule of the remaining progress)
    :param dataset: a local Minari id, a ``MinariDataset``, a D4RL-format ``.hdf5``/``.npz`` path, a dict of arrays
    :param batch_size: policy minibatch size
    :param critic_steps: IQL gradient steps run before the policy phase
    :param critic_batch_size: IQL minibatch size (None: ``batch_size``)
    :param critic_learning_rate: learning rate of Q and V
    :param bc_steps: flow-matching behaviour-cloning steps of the actor before the critic (GMPG: mu, copied into pi;
        GMPO: a warm start, where the paper trains from scratch with 0)
    :param bc_learning_rate: behaviour-cloning learning rate (its own optimizer)
    :param bc_batch_size: behaviour-cloning minibatch size (None: ``critic_batch_size`` or ``batch_size``)
    :param gamma: discount
    :param tau: Polyak coefficient of the target Q
    :param expectile: IQL expectile (0.7 locomotion, 0.9 AntMaze)
    :param normalize_reward: scale rewards by ``1000 / (max episode return - min episode return)`` (IQL's
        locomotion scheme); the factor is stored with the model as ``reward_scale``
    :param normalize_observations: standardise observations with the dataset's mean and std (kept in the policy)
    :param clip_actions: clip dataset actions outside the action space instead of raising
    :param download: let Minari download a dataset id missing locally
    :param critic: a trained :class:`IQLCritic` (for example ``other_model.critic``), a model, or a saved model's
        path, whose critic is copied in, or a trained d3rlpy Q-learning algorithm (:meth:`load_critic`); its training is
        then skipped
    :param precision: precision of the training updates: "auto" (TF32 matrix products on CUDA, fp32 on CPU),
        "fp32", "tf32" or "bf16" (autocast); applied during ``learn`` only
    :param torch_threads: torch's CPU threads during ``learn`` and ``pretrain`` (restored afterwards); None leaves
        torch's setting. On a machine shared with other work use 1
    :param torch_compile: compile each phase's update and the sampler behind ``predict`` with torch.compile: True
        for its default mode, or a mode name ("reduce-overhead": CUDA graphs on CUDA); not saved with the model
        (``load(path, torch_compile=...)`` or :meth:`set_torch_compile` choose again)
    :param policy_kwargs: policy arguments (``generative_model``, ``net_arch``, ``n_sampling_steps``, ...)
    :param stats_window_size: SB3's window for rollout statistics (unused offline)
    :param tensorboard_log: tensorboard log folder
    :param verbose: 0 silent, 1 info, 2 debug
    :param seed: random seed: same seed, same training on CPU
    :param device: "cpu", "cuda" or "auto"
    """

    #: whether the algorithm uses the critic's V (GMPO's advantage Q - V); GMPG needs Q only
    critic_needs_value: ClassVar[bool] = True

    policy: GenerativeActorPolicy
    replay_buffer: OfflineReplayBuffer | None
    #: losses averaged between two log dumps, kept on the device until then
    _train_stats: dict[str, th.Tensor]

    def __init__(
        self,
        policy: str | type[GenerativeActorPolicy],
        env: GymEnv | str | None,
        learning_rate: float | Schedule = 1e-4,
        dataset: Any = None,
        batch_size: int = 4096,
        critic_steps: int = 200_000,
        critic_batch_size: int | None = None,
        critic_learning_rate: float = 3e-4,
        bc_steps: int = 0,
        bc_learning_rate: float = 1e-4,
        bc_batch_size: int | None = None,
        gamma: float = 0.99,
        tau: float = 0.005,
        expectile: float = 0.7,
        normalize_reward: bool = True,
        normalize_observations: bool = False,
        clip_actions: bool = False,
        download: bool = False,
        critic: Any = None,
        precision: str = "auto",
        torch_threads: int | None = None,
        torch_compile: bool | str = False,
        policy_kwargs: dict[str, Any] | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
    ) -> None:
        _check_common_settings(locals())
        data = load_offline_data(dataset, download=download) if dataset is not None else None
        if env is None and data is not None and data.env_spec is not None:
            env = _recover_env(data)
        try:
            super().__init__(
                policy,
                env,
                learning_rate,
                policy_kwargs=policy_kwargs,
                stats_window_size=stats_window_size,
                tensorboard_log=tensorboard_log,
                verbose=verbose,
                device=device,
                support_multi_env=True,  # the env only evaluates
                seed=seed,
                supported_action_spaces=(spaces.Box,),
            )
        except AssertionError as error:  # SB3's own space checks, with what is supported added
            raise UnsupportedSpaceError(f"{error}. {SUPPORTED_SPACES}") from error
        if self.env is None and data is not None:
            self.observation_space, self.action_space = data.observation_space, data.action_space
        if hasattr(self, "observation_space"):
            check_supported_spaces(self.observation_space, self.action_space)
        _refuse_obs_normalizing_vec_env(self.env)
        self.batch_size, self.critic_steps = batch_size, critic_steps
        self.critic_batch_size = critic_batch_size
        self.critic_learning_rate, self.gamma, self.tau, self.expectile = critic_learning_rate, gamma, tau, expectile
        self.bc_steps, self.bc_learning_rate, self.bc_batch_size = bc_steps, bc_learning_rate, bc_batch_size
        self.normalize_reward, self.normalize_observations = normalize_reward, normalize_observations
        self.clip_actions, self.download = clip_actions, download
        self.precision, self.torch_threads, self.torch_compile = precision, torch_threads, torch_compile
        self.replay_buffer = None
        self.dataset_source: str | None = None
        self.reward_scale = 1.0
        self.statistics_fitted = False
        self.critic_steps_done = self.bc_steps_done = 0
        self._train_stats = {}
        self._pending_data, self._pending_critic = data, critic  # attached by _setup_model

    # ------------------------------------------------------------------------------------------------ set-up
    def _policy_arguments(self) -> dict[str, Any]:
        """Arguments the algorithm gives its policy besides ``policy_kwargs`` (the critic's and BC's learning rates)."""
        return dict(critic_learning_rate=self.critic_learning_rate, bc_learning_rate=self.bc_learning_rate)

    def _setup_model(self) -> None:
        if not hasattr(self, "observation_space"):
            raise ValueError("An offline algorithm needs an env or a dataset to know its spaces")
        self._setup_lr_schedule()
        self.set_random_seed(self.seed)
        self.policy = self.policy_class(  # type: ignore[assignment]
            self.observation_space, self.action_space, self.lr_schedule, **self._policy_arguments(), **self.policy_kwargs
        )
        self.policy = self.policy.to(self.device)
        self._create_aliases()
        self.set_torch_compile(getattr(self, "torch_compile", False))
        self._train_stats = {}
        adaptive, initial = parse_beta(getattr(self, "beta", 1.0))
        self.log_beta: th.Tensor | None = None
        self.beta_optimizer: th.optim.Optimizer | None = None
        if adaptive:  # beta="auto": a Lagrange multiplier on the algorithm's budget (common/adaptive_beta.py)
            learning_rate = float(getattr(self, "beta_learning_rate", 1e-3))  # each algorithm's setting
            self.log_beta, self.beta_optimizer = make_log_beta(initial, learning_rate, self.device)
        self._guard = FiniteGuard(self.policy, self._optimizers(), self._guarded_state, self._restore_guarded_state)
        # random-number states saved with the model, so that a loaded model continues exactly (see save())
        self.rng_state = th.get_rng_state()
        self.sampler_rng_state = th.Generator().get_state()
        data, critic = getattr(self, "_pending_data", None), getattr(self, "_pending_critic", None)
        self._pending_data = self._pending_critic = None
        if data is not None:
            self._attach_dataset(data)
        if critic is not None:
            self.load_critic(critic)

    def set_torch_compile(self, mode: bool | str) -> None:
        """Compile the updates and the sampler (see ``torch_compile``), or go back to eager.

        :param mode: False, True or a torch.compile mode
        """
        self.torch_compile = check_compile_option(mode)
        self.policy.set_torch_compile(mode)
        self._compiled = {name: compiled(function, mode) for name, function in self._compile_regions().items()}

    def _compile_regions(self) -> dict[str, Any]:
        """The functions compiled as one region each (GMPO adds its loss, GMPG its losses)."""
        return {"critic_losses": self.critic.losses, "bc_loss": self.bc_loss}

    def _region(self, name: str, eager: Any) -> Any:
        """The compiled region ``name`` under ``torch_compile``, else the eager function itself."""
        return self._compiled[name] if getattr(self, "torch_compile", False) else eager

    def _optimizers(self) -> list[th.optim.Optimizer]:
        """Every optimizer of the policy, and beta's when it adapts (saved with the model, rolled back by the guard)."""
        beta = [self.beta_optimizer] if getattr(self, "beta_optimizer", None) is not None else []
        return [self.policy.optimizer, self.critic.optimizer, self.policy.bc_optimizer, *beta]  # type: ignore[list-item]

    @property
    def beta_value(self) -> float | th.Tensor:
        """The beta of the next update: the setting, or with ``beta="auto"`` the adapted value (a tensor on the
        device, read without a host sync)."""
        if getattr(self, "log_beta", None) is None:
            return float(self.beta)  # type: ignore[attr-defined]
        assert self.log_beta is not None
        return self.log_beta.detach().exp()

    def _create_aliases(self) -> None:
        self.actor = self.policy.actor
        self.critic: IQLCritic = self.policy.critic

    def _excluded_save_params(self) -> list[str]:
        excluded = ["actor", "critic", "_train_stats", "_guard", "_restore_rng_on_learn", "_pending_data", "_compiled",
                    "_health_indices"]  # fmt: skip
        return [*super()._excluded_save_params(), *excluded, "_pending_critic", "_warned_replay_buffer", "torch_compile"]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        optimizers = ["policy.optimizer", "policy.critic.optimizer", "policy.bc_optimizer"]
        adaptive = getattr(self, "beta_optimizer", None) is not None  # as SAC saves log_ent_coef and its optimizer
        beta_optimizer, log_beta = (["beta_optimizer"], ["log_beta"]) if adaptive else ([], [])
        return ["policy", *optimizers, *beta_optimizer], ["rng_state", "sampler_rng_state", *log_beta]

    # ------------------------------------------------------------------------------------------------ guard state
    def _counters(self) -> tuple[str, ...]:
        """Attributes counting the steps of each phase (rolled back with the parameters)."""
        return ("num_timesteps", "_n_updates", "critic_steps_done", "bc_steps_done")

    def _guarded_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {name: getattr(self, name) for name in self._counters()}
        state["torch_rng"] = th.get_rng_state()
        if self.replay_buffer is not None:
            state["sampler_rng"] = self.replay_buffer.generator.get_state()
        if self.log_beta is not None:
            state["log_beta"] = self.log_beta.detach().clone()
        return state

    def _restore_guarded_state(self, state: dict[str, Any]) -> None:
        for name in self._counters():
            setattr(self, name, state[name])
        th.set_rng_state(state["torch_rng"])
        if self.replay_buffer is not None and "sampler_rng" in state:
            self.replay_buffer.generator.set_state(state["sampler_rng"])
        if self.log_beta is not None and "log_beta" in state:
            self.log_beta.data.copy_(state["log_beta"])  # in place: its optimizer holds this tensor

    # ------------------------------------------------------------------------------------------------ save
    def save(
        self,
        path: str | pathlib.Path | io.BufferedIOBase,
        exclude: Iterable[str] | None = None,
        include: Iterable[str] | None = None,
        allow_non_finite: bool = False,
    ) -> None:
        """Save the model (never the dataset) atomically: a temporary file in the same folder, then a rename, so an
        interrupted save never leaves a truncated zip in place of a good one (and the next save to the same path
        removes the temporary file a killed one left). The random-number states of torch and of the dataset sampler
        are saved too, so that ``load`` then ``learn(..., reset_num_timesteps=False)`` continues a CPU run bit for bit.
        A plain-JSON description of the model is stored beside SB3's data, for ``load(..., safe=True)``.

        :param path: file path (".zip" is added when there is no suffix) or a file-like object
        :param exclude: attributes not to save
        :param include: attributes to save even if excluded by default
        :param allow_non_finite: save even if parameters or optimizer states hold NaN or inf (refused otherwise)
        """
        if not allow_non_finite and not self._guard.state_is_finite():
            raise NonFiniteError(
                "The model holds non-finite parameters or optimizer state (NaN or inf): not saved, so that no good file "
                "is replaced by a broken one. Pass allow_non_finite=True to save it anyway."
            )
        self.rng_state = th.get_rng_state()
        if self.replay_buffer is not None and self.replay_buffer.device.type == "cpu":
            self.sampler_rng_state = self.replay_buffer.generator.get_state()
        if not isinstance(path, (str, os.PathLike)):
            super().save(path, exclude, include)
            write_description(path, self._description())
            return
        if os.fspath(path) == "":
            raise ValueError("save() needs a file path, got an empty one")
        final = pathlib.Path(path)
        if final.suffix == "":
            final = final.with_suffix(".zip")
        final.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporary_files(final)
        tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp.zip")
        try:
            with open(tmp, "w+b") as file:  # an OSError here names the path (SB3's own path handling would recurse)
                super().save(file, exclude, include)
                write_description(file, self._description())
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)

    def _description(self) -> dict[str, Any]:
        """The model as plain JSON, for ``load(..., safe=True)``: spaces, settings, policy arguments, state."""
        names = [n for n in inspect.signature(type(self).__init__).parameters if n not in _NOT_DESCRIBED]
        return {
            "algorithm": type(self).__name__,
            "policy_class": type(self.policy).__name__,
            "observation_space": space_to_json(self.observation_space),
            "action_space": space_to_json(self.action_space),
            "settings": plain_settings({name: getattr(self, name) for name in names if hasattr(self, name)}),
            "policy_kwargs": policy_kwargs_to_json(self.policy._get_constructor_parameters()),
            "state": plain_settings(
                {
                    "reward_scale": self.reward_scale,
                    "ref_min_score": getattr(self, "ref_min_score", None),
                    "ref_max_score": getattr(self, "ref_max_score", None),
                    "dataset_source": self.dataset_source,
                    **{name: getattr(self, name) for name in self._counters()},
                }
            ),
        }

    def save_replay_buffer(self, path: str | pathlib.Path | io.BufferedIOBase) -> None:
        """Nothing to save: an offline model's "replay buffer" is its dataset, which is never copied into files.

        ``CheckpointCallback(save_replay_buffer=True)`` calls this; it writes nothing and warns once. A model trained
        on a Minari id or a file re-opens it by itself (``dataset_source``); pass ``dataset=`` to ``load`` otherwise.

        :param path: where SB3 would have written the buffer (ignored)
        """
        if not getattr(self, "_warned_replay_buffer", False):
            warnings.warn(
                "save_replay_buffer: an offline model's replay buffer is its dataset, which is never saved; nothing was "
                f"written to {path!s}. Its source, {self.dataset_source or '(in memory)'}, is stored with the model.",
                stacklevel=2,
            )
            self._warned_replay_buffer = True

    def load_replay_buffer(self, path: str | pathlib.Path | io.BufferedIOBase, truncate_last_traj: bool = True) -> None:
        """Refused: an offline model takes its data from a dataset (``set_dataset`` or ``load(..., dataset=...)``).

        :param path: a replay buffer file
        :param truncate_last_traj: unused
        """
        raise DatasetError(
            f"An offline model does not load replay buffers ({path!s}): attach data with set_dataset(dataset) or "
            "load(path, dataset=...)"
        )

    # ------------------------------------------------------------------------------------------------ data
    def set_dataset(self, dataset: Any) -> None:
        """Attach a dataset (after ``load()``, or to train on new data): validated, flattened, moved to the device.

        The reward scale and observation statistics are computed from the first dataset and then kept, so a loaded
        model continues with the scale its critic was trained with.

        :param dataset: any form accepted by the constructor's ``dataset``
        """
        self._attach_dataset(load_offline_data(dataset, download=self.download))

    def _attach_dataset(self, data: OfflineData) -> None:
        """Attach already loaded and checked data: check it against the spaces, fit statistics, move it."""
        check_against_spaces(data, self.observation_space, self.action_space, clip_actions=self.clip_actions)
        if not self.statistics_fitted:
            self._fit_statistics(data)
        self.dataset_source = data.source
        assert isinstance(self.action_space, spaces.Box)  # checked at construction
        self.replay_buffer = OfflineReplayBuffer(
            data,
            self.action_space,
            self.device,
            reward_scale=self.reward_scale,
            seed=self.seed,  # type: ignore[arg-type]
        )
        if getattr(self, "_restore_rng_on_learn", False) and self.replay_buffer.device.type == "cpu":
            self.replay_buffer.generator.set_state(self.sampler_rng_state.cpu())
        self.ref_min_score, self.ref_max_score = data.ref_min_score, data.ref_max_score
        if self.verbose >= 1:
            print(f"Dataset {data.source or '(in memory)'}: {len(data)} transitions, reward scale {self.reward_scale:.6g}")

    def _fit_statistics(self, data: OfflineData) -> None:
        self.reward_scale = locomotion_reward_scale(data) if self.normalize_reward else 1.0
        if self.normalize_observations:
            mean, std = observation_statistics(data)
            self.policy.set_observation_stats(th.as_tensor(mean), th.as_tensor(std).clamp(min=1e-3))
        self.statistics_fitted = True

    def _require_dataset(self) -> OfflineReplayBuffer:
        if self.replay_buffer is None and self.dataset_source is not None:
            self.set_dataset(self.dataset_source)
        if self.replay_buffer is None:
            raise DatasetError("No dataset is attached: pass dataset= to the constructor or to load(), or call set_dataset()")
        return self.replay_buffer

    def normalized_score(self, returns: float | np.ndarray | list[float]) -> np.ndarray:
        """D4RL-normalised score of episode returns, with the dataset's reference returns.

        :param returns: episode return(s)
        """
        return normalized_score(
            returns, ref_min_score=getattr(self, "ref_min_score", None), ref_max_score=getattr(self, "ref_max_score", None)
        )

    # ------------------------------------------------------------------------------------------------ critic
    def load_critic(self, source: Any) -> None:
        """Copy a trained IQL critic in and skip critic training.

        :param source: an :class:`IQLCritic`, an :class:`OfflineAlgorithm`, a path to a saved model's zip, or a trained
            d3rlpy Q-learning algorithm (ReBRAC, TD3+BC, IQL, ...) whose Q-functions are built like this model's critic
            (``critics/d3rlpy_q.py``; the algorithm object, never a file: d3rlpy's files are pickles)
        """
        if is_d3rlpy_algo(source):
            self._load_d3rlpy_critic(source)
            return
        if isinstance(source, OfflineAlgorithm):
            self._check_compatible_statistics(source.reward_scale, source.policy.obs_mean, source.policy.obs_std)
            source = source.critic
        if isinstance(source, IQLCritic):
            state = source.state_dict()
        elif isinstance(source, (str, pathlib.Path, io.BufferedIOBase)):
            state = self._critic_from_file(source)
        else:
            raise TypeError(f"critic must be an IQLCritic, an OfflineAlgorithm or a path, got {type(source).__name__}")
        try:
            self.critic.load_state_dict(state)
        except RuntimeError as error:
            raise ValueError(f"The critic does not fit this model (different sizes or ensemble): {error}") from error
        self.critic_steps_done = self.critic_steps

    def _load_d3rlpy_critic(self, algo: Any) -> None:
        """Copy a d3rlpy algorithm's Q ensemble (and value function, if it has one) in, folded to this model's input
        scaling and checked against d3rlpy's own Q values (:mod:`sb3_generative.critics.d3rlpy_q`)."""
        if not self.statistics_fitted:
            raise DatasetError("Attach the dataset before copying a d3rlpy critic: its inputs are mapped to this model's")
        assert isinstance(self.action_space, spaces.Box)
        low, high = self.action_space.low.reshape(-1), self.action_space.high.reshape(-1)
        stats = (self.policy.obs_mean, self.policy.obs_std, low, high)
        state, has_value = d3rlpy_critic_state(algo, self.critic, *stats)
        if self.critic_needs_value and not has_value:
            raise ValueError(
                f"{type(self).__name__} weights actions by Q - V, and d3rlpy's {type(algo).__name__} has no value "
                "function: use a d3rlpy IQL critic here, or this critic with GMPG (which needs Q only)"
            )
        try:
            self.critic.load_state_dict(state)
        except RuntimeError as error:
            raise ValueError(
                f"The d3rlpy critic does not fit this model's critic; build it with {architecture(algo.impl.modules.q_funcs)}"
            ) from error
        check_copied_q(algo, self.critic, *stats)
        self.critic_steps_done = self.critic_steps

    def _critic_from_file(self, path: str | pathlib.Path | io.BufferedIOBase) -> dict[str, th.Tensor]:
        """The critic's tensors from a saved model, read as data (weights only, nothing unpickled), after the same
        checks as for a model: the reward scale and the observation statistics it was trained with."""
        data, description = read_model_zip(path)
        check_saved_by(description["algorithm"] if description else "GMPO", data, description, path)
        _, params, _ = load_from_zip_file(path, device=self.device, load_data=False)
        if params is None or "policy" not in params:
            raise ModelFileError(f"{path!r} holds no policy parameters to take a critic from")
        policy_state: dict[str, th.Tensor] = params["policy"]  # type: ignore[assignment]
        scale = (description or {}).get("state", {}).get("reward_scale", data.get("reward_scale"))
        if not isinstance(scale, (int, float)) or isinstance(scale, bool):
            raise ModelFileError(f"{path!r} does not say which reward scale its critic was trained with")
        self._check_compatible_statistics(float(scale), policy_state["obs_mean"], policy_state["obs_std"])
        return {k[len("critic.") :]: v for k, v in policy_state.items() if k.startswith("critic.")}

    def _check_compatible_statistics(self, reward_scale: float, obs_mean: th.Tensor, obs_std: th.Tensor) -> None:
        if not np.isclose(reward_scale, self.reward_scale, rtol=1e-6):
            raise ValueError(
                f"The critic was trained with reward scale {reward_scale:.6g}, this model uses "
                f"{self.reward_scale:.6g}: Q values would be on another scale"
            )
        if obs_mean.shape != self.policy.obs_mean.shape or not (
            th.allclose(obs_mean.cpu(), self.policy.obs_mean.cpu()) and th.allclose(obs_std.cpu(), self.policy.obs_std.cpu())
        ):
            raise ValueError("The critic was trained with other observation statistics (normalize_observations differs)")

    def critic_step(self, batch: ReplayBufferSamples) -> dict[str, th.Tensor]:
        """One IQL step: Adam on ``q_loss + v_loss``, then the Polyak update of the target Q (the critic phase's step).

        :param batch: a minibatch of the dataset
        :return: the detached losses (no host synchronisation)
        """
        obs, next_obs = self.policy.normalize_obs(batch.observations), self.policy.normalize_obs(batch.next_observations)
        q_loss, v_loss = self._region("critic_losses", self.critic.losses)(
            obs, batch.actions, batch.rewards, next_obs, batch.dones, gamma=self.gamma, expectile=self.expectile
        )
        self.critic.optimizer.zero_grad(set_to_none=True)
        (q_loss + v_loss).backward()
        self.critic.optimizer.step()
        self.critic.soft_update(self.tau)
        return {"q_loss": q_loss.detach(), "v_loss": v_loss.detach()}

    # ------------------------------------------------------------------------------------------------ pre-training
    def _pretrain_phases(self) -> list[Phase]:
        """The phases before the policy updates, in order: behaviour cloning (none with ``bc_steps=0``), the critic."""
        batch_size = self.bc_batch_size or self.critic_batch_size or self.batch_size
        bc = Phase("bc", "behaviour cloning", self.bc_steps, "bc_steps_done", batch_size, self.bc_step, ("loss",))
        return [bc, self._critic_phase()]

    def bc_loss(self, observations: th.Tensor, actions: th.Tensor) -> th.Tensor:
        """Behaviour cloning's loss on a batch: the generative model's own matching loss, unweighted.

        :param observations: states (B, n), as stored
        :param actions: dataset actions in [-1, 1] (B, d)
        """
        return self.actor.per_sample_loss(actions, self.policy.normalize_obs(observations)).mean()

    def bc_step(self, batch: ReplayBufferSamples) -> dict[str, th.Tensor]:
        """One behaviour-cloning step of the actor (the behaviour-cloning phase's step), with its own optimizer.

        :param batch: a minibatch of the dataset
        :return: the detached loss (no host synchronisation)
        """
        loss = self._region("bc_loss", self.bc_loss)(batch.observations, batch.actions)
        self.policy.bc_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.policy.bc_optimizer.step()
        if self.bc_steps_done + 1 == self.bc_steps:
            self._on_behaviour_cloned()
        return {"loss": loss.detach()}

    def _on_behaviour_cloned(self) -> None:
        """Called after the last behaviour-cloning step (GMPG copies the actor into its frozen mu)."""

    def _critic_phase(self) -> Phase:
        return Phase(
            "critic",
            "IQL critic",
            self.critic_steps,
            "critic_steps_done",
            self.critic_batch_size or self.batch_size,
            self.critic_step,
            ("q_loss", "v_loss"),
        )

    def pretrain(
        self: SelfOfflineAlgorithm,
        log_interval: int | None = 5000,
        progress_bar: bool = False,
        phases: tuple[str, ...] | None = None,
    ) -> SelfOfflineAlgorithm:
        """Run only the phases before the policy updates (the IQL critic; for GMPG behaviour cloning first).

        ``learn`` runs them too, the first time; each phase runs once over the model's life, so calling this first
        (to share the critic, or to score the behaviour-cloned policy) costs nothing later.

        :param log_interval: steps between two log tables of a phase (None: only at its end)
        :param progress_bar: show a progress bar per phase
        :param phases: only these phases, by name ("critic", GMPG's "bc"); None: all of them
        :return: the model
        """
        check_int("log_interval", log_interval, allow_none=True)
        self._require_dataset()
        self._restore_saved_rng()
        if not hasattr(self, "_logger"):
            self._logger = configure_logger(self.verbose, self.tensorboard_log, "pretrain", True)
        self._guard.take_snapshot("the start of pre-training")
        names = [phase.name for phase in self._pretrain_phases()]
        if phases is not None and not set(phases) <= set(names):
            raise ValueError(f"Unknown phase(s) {sorted(set(phases) - set(names))}: {type(self).__name__} has {names}")
        with precision_context(self.precision, self.device), threads_context(self.torch_threads):
            self._run_pretraining(log_interval, progress_bar, phases)
        return self

    def _run_pretraining(self, log_interval: int | None, progress_bar: bool, phases: tuple[str, ...] | None = None) -> None:
        for phase in self._pretrain_phases():
            if phases is None or phase.name in phases:
                self._run_phase(phase, log_interval, progress_bar)

    def _run_phase(self, phase: Phase, log_interval: int | None, progress_bar: bool) -> None:
        """Run a phase to its budget: progress, logs under ``<phase.name>/*``, guard checks at log intervals."""
        remaining = phase.total - getattr(self, phase.counter)
        if remaining <= 0:
            return
        buffer = self._require_dataset()
        self.policy.set_training_mode(True)
        stats: dict[str, th.Tensor] = {}
        with PhaseProgress(progress_bar, remaining, phase.title) as bar, self._checked_on_interrupt(phase.title):
            while (done := getattr(self, phase.counter)) < phase.total:
                step_stats = phase.step(buffer.sample(phase.batch_size))
                setattr(self, phase.counter, done + 1)
                self._guard.watch(done + 1, {key: step_stats[key] for key in phase.watched})
                accumulate(stats, step_stats)
                bar.update(1)
                if done + 1 == phase.total or (log_interval is not None and (done + 1) % log_interval == 0):
                    self._guard.check(phase.title, f"{phase.title} step {done + 1}")
                    self._dump_phase_logs(phase.name, stats, done + 1)

    @contextlib.contextmanager
    def _checked_on_interrupt(self, title: str) -> Iterator[None]:
        """On Ctrl-C, check the steps not yet checked before letting the interrupt through: a model left holding
        NaN parameters is rolled back (and says so) instead of being returned silently."""
        try:
            yield
        except KeyboardInterrupt:
            if self._guard.pending():
                self._guard.check(title, f"the interrupted {title} phase")
            raise

    def _dump_phase_logs(self, phase: str, stats: dict[str, th.Tensor], step: int) -> None:
        for key, value in means(stats).items():
            self.logger.record(f"{phase}/{key}", value)
        self.logger.record(f"{phase}/step", step)
        self.logger.dump(step=step)

    def _restore_saved_rng(self) -> None:
        if getattr(self, "_restore_rng_on_learn", False):  # continue a saved run exactly
            th.set_rng_state(self.rng_state.cpu())
            self._restore_rng_on_learn = False

    # ------------------------------------------------------------------------------------------------ learn
    def _setup_learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        reset_num_timesteps: bool = True,
        tb_log_name: str = "run",
        progress_bar: bool = False,
    ) -> tuple[int, BaseCallback]:
        """``BaseAlgorithm._setup_learn`` without the environment reset (nothing is collected offline)."""
        self.start_time = time.time_ns()
        if self.ep_info_buffer is None or reset_num_timesteps:
            self.ep_info_buffer = deque(maxlen=self._stats_window_size)
            self.ep_success_buffer = deque(maxlen=self._stats_window_size)
        if reset_num_timesteps:
            self.num_timesteps = 0
            self._episode_num = 0
        else:
            total_timesteps += self.num_timesteps
        self._total_timesteps = total_timesteps
        self._num_timesteps_at_start = self.num_timesteps
        if not self._custom_logger:
            self._logger = configure_logger(self.verbose, self.tensorboard_log, tb_log_name, reset_num_timesteps)
        return total_timesteps, self._init_callback(callback, progress_bar)

    def _init_callback(self, callback: MaybeCallback, progress_bar: bool = False) -> BaseCallback:
        """SB3's callback set-up, with the policy phase's progress bar named like the pre-training phases' bars."""
        if isinstance(callback, list):
            callback = CallbackList(callback)
        if not isinstance(callback, BaseCallback):
            callback = ConvertCallback(callback)
        if progress_bar:
            callback = CallbackList([callback, NamedProgressBar(f"{type(self).__name__} policy")])
        callback.init_callback(self)
        return callback

    def learn(
        self: SelfOfflineAlgorithm,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int | None = 5000,
        tb_log_name: str = "run",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfOfflineAlgorithm:
        """Train: the pre-training phases once (see :meth:`pretrain`), then ``total_timesteps`` policy gradient steps.

        Callbacks see the policy steps only; the pre-training phases show their own progress bars and logs.

        :param total_timesteps: number of policy gradient steps
        :param callback: SB3 callback(s), called after every policy gradient step
        :param log_interval: gradient steps between two log tables (and non-finite checks), counted in the steps of
            the phase that runs (critic, behaviour-cloning or policy steps); None: one table at the end of each phase.
            The default gives 20 tables per 100,000 steps
        :param tb_log_name: name of the tensorboard run
        :param reset_num_timesteps: restart the step counter (False continues it)
        :param progress_bar: show progress bars (one per pre-training phase, then the policy phase)
        :return: the trained model
        """
        check_int("total_timesteps", total_timesteps, minimum=0)
        check_int("log_interval", log_interval, allow_none=True)
        self._require_dataset()
        self._restore_saved_rng()
        total_timesteps, callback = self._setup_learn(
            total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar
        )
        self._guard.take_snapshot("the start of learn()")
        with precision_context(self.precision, self.device), threads_context(self.torch_threads):
            self._run_pretraining(log_interval, progress_bar)
            self.start_time = time.time_ns()  # fps of the policy phase only
            callback.on_training_start(locals(), globals())
            self.policy.set_training_mode(True)
            with self._checked_on_interrupt("policy"):
                self._policy_loop(total_timesteps, callback, log_interval)
        self.policy.set_training_mode(False)
        callback.on_training_end()
        return self

    def _policy_loop(self, total_timesteps: int, callback: BaseCallback, log_interval: int | None) -> None:
        while self.num_timesteps < total_timesteps:
            self._update_current_progress_remaining(self.num_timesteps, total_timesteps)
            self.train(gradient_steps=1, batch_size=self.batch_size)
            self.num_timesteps += 1
            callback.update_locals(locals())
            if not callback.on_step():
                break
            if log_interval is not None and self.num_timesteps % log_interval == 0:
                self._guard.check("policy", f"policy step {self.num_timesteps}")
                self.dump_logs()
        self._guard.check("policy", f"policy step {self.num_timesteps}")
        if self._train_stats:  # the steps since the last table: a short run still logs once
            self.dump_logs()

    def train(self, gradient_steps: int, batch_size: int) -> None:
        """Policy gradient steps on minibatches of the dataset (implemented by each algorithm).

        :param gradient_steps: number of steps
        :param batch_size: minibatch size
        """
        raise NotImplementedError

    def _record_train_stats(self, stats: dict[str, th.Tensor], watched: tuple[str, ...] = ()) -> None:
        """Add detached per-step statistics to the running sums and watch some for NaN / inf (no host sync).

        :param stats: per-step statistics
        :param watched: keys of ``stats`` that must stay finite (losses, gradient norms)
        """
        accumulate(self._train_stats, stats)
        if watched:
            self._guard.watch(self.num_timesteps + 1, {key: stats[key] for key in watched})

    def _check_health(self, train: dict[str, float]) -> None:
        """Look at the policy phase's logged means since the last table (subclasses warn on what they can read).

        :param train: the ``train/*`` means, by key without the prefix
        """

    def dump_logs(self) -> None:
        """Write ``time/*`` and the ``train/*`` means since the last dump."""
        time_elapsed = max((time.time_ns() - self.start_time) / 1e9, sys.float_info.epsilon)
        fps = int((self.num_timesteps - self._num_timesteps_at_start) / time_elapsed)
        self.logger.record("time/fps", fps)
        self.logger.record("time/time_elapsed", int(time_elapsed), exclude="tensorboard")
        self.logger.record("time/total_timesteps", self.num_timesteps, exclude="tensorboard")
        train = means(self._train_stats)
        for key, value in train.items():
            self.logger.record(f"train/{key}", value)
        self._check_health(train)
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/reward_scale", self.reward_scale)
        self.logger.dump(step=self.num_timesteps)

    # ------------------------------------------------------------------------------------------------ load
    @classmethod
    def load(  # type: ignore[override]
        cls: type[SelfOfflineAlgorithm],
        path: str | pathlib.Path | io.BufferedIOBase,
        env: GymEnv | None = None,
        device: th.device | str = "auto",
        custom_objects: dict[str, Any] | None = None,
        print_system_info: bool = False,
        force_reset: bool = True,
        dataset: Any = None,
        safe: bool = False,
        **kwargs: Any,
    ) -> SelfOfflineAlgorithm:
        """Load a model; ``dataset=`` (or :meth:`set_dataset` later) lets training continue.

        The zip is checked first, as data: a file that is not a zip, is truncated, lacks SB3's ``data``, holds broken
        JSON or was saved by another algorithm raises :class:`ModelFileError` saying which. Plain ``load`` then does
        what SB3's does, which unpickles the classes stored in the file: use it on files you trust. ``safe=True``
        rebuilds the model from the file's plain-JSON description and weights-only tensors, so nothing from the file
        runs; it needs a file saved by this version or later. Without a dataset the model predicts; ``learn``
        re-opens the Minari id or file it was trained on (never in safe mode, and never downloading: ``download``
        is not taken from the file).

        :param path: saved zip
        :param env: environment (spaces must match)
        :param device: device to load on
        :param custom_objects: objects replacing saved ones
        :param print_system_info: print the saving and loading systems
        :param force_reset: as in SB3
        :param dataset: dataset to attach for further training
        :param safe: rebuild from the plain-JSON description and weights only (for files you did not make)
        :param kwargs: attributes to set on the loaded model
        """
        data, description = read_model_zip(path)
        check_saved_by(cls.__name__, data, description, path)
        token = _LOADING_FILE.set(True)  # set_parameters may fill in what an older file lacks
        try:
            if safe:
                model = cls._load_safe(path, description, env, device)
            else:
                model = super().load(path, env, device, custom_objects, print_system_info, force_reset, **kwargs)
        finally:
            _LOADING_FILE.reset(token)
        model.download = bool(kwargs.get("download", False))  # the file never decides to download
        model._restore_rng_on_learn = True
        if dataset is not None:
            model.set_dataset(dataset)
        return model

    def set_parameters(
        self,
        load_path_or_dict: str | TensorDict,
        exact_match: bool = True,
        device: th.device | str = "auto",
    ) -> None:
        """SB3's ``set_parameters``: with ``exact_match`` a missing or unknown object is a ``ValueError``, as in SB3.
        One exception, for files only (a path, or within :meth:`load`): a GMPO file saved before GMPO could clone
        behaviour has no ``policy.bc_optimizer``; it keeps the fresh optimizer's state (nothing else may be missing).

        :param load_path_or_dict: saved zip, or a dict of state dicts by object name (``get_parameters``)
        :param exact_match: every object must be given
        :param device: device of the tensors
        """
        params: TensorDict = {}
        if isinstance(load_path_or_dict, dict):
            params = load_path_or_dict
        else:
            _, loaded, _ = load_from_zip_file(load_path_or_dict, device=device, load_data=False)
            params = dict(loaded or {})
        legacy_file = _LOADING_FILE.get() or not isinstance(load_path_or_dict, dict)
        if exact_match and legacy_file and "policy.bc_optimizer" not in params:
            params = {**params, "policy.bc_optimizer": self.policy.bc_optimizer.state_dict()}  # type: ignore[dict-item]
        super().set_parameters(params, exact_match, device)

    @classmethod
    def _load_safe(
        cls: type[SelfOfflineAlgorithm],
        path: str | pathlib.Path | io.BufferedIOBase,
        description: dict[str, Any] | None,
        env: GymEnv | None,
        device: th.device | str,
    ) -> SelfOfflineAlgorithm:
        """Rebuild a model from its description and weights-only tensors (see :meth:`load`)."""
        if description is None:
            raise ModelFileError(
                f"{path!r} has no plain-JSON description (saved before safe loading existed): load(..., safe=True) "
                "cannot rebuild it; load it with safe=False only if you trust the file"
            )
        try:
            settings, state = dict(description["settings"]), dict(description["state"])
            observation_space = space_from_json(description["observation_space"], "observation")
            action_space = space_from_json(description["action_space"], "action")
            policy_kwargs = policy_kwargs_from_json(description["policy_kwargs"])
            policy_class = cls.policy_aliases["GenerativePolicy"]
            if description["policy_class"] != policy_class.__name__:
                raise ModelFileError(
                    f"safe loading rebuilds {policy_class.__name__}, the file holds {description['policy_class']}"
                )
            model = cls(policy_class, None, device=device, _init_setup_model=False, **settings)  # type: ignore[call-arg, arg-type]
        except (KeyError, TypeError) as error:
            raise ModelFileError(f"{path!r} holds an incomplete or malformed description: {error!r}") from error
        model.observation_space, model.action_space = observation_space, action_space
        check_supported_spaces(observation_space, action_space)
        model.policy_kwargs = {k: v for k, v in policy_kwargs.items() if k not in model._policy_arguments()}
        model._setup_model()
        _, params, tensors = load_from_zip_file(path, device=model.device, load_data=False)
        model.set_parameters(params, exact_match=True, device=model.device)  # type: ignore[arg-type]
        for name, value in (tensors or {}).items():
            current = getattr(model, name, None)
            if isinstance(current, th.Tensor) and current.requires_grad:  # log_beta: in place, its optimizer holds it
                current.data.copy_(value)
            else:
                setattr(model, name, value)
        model._restore_described_state(state)
        if env is not None:
            model.set_env(env)
        return model

    def _restore_described_state(self, state: dict[str, Any]) -> None:
        for name in self._counters():
            setattr(self, name, int(state.get(name, 0)))
        self.reward_scale = float(state["reward_scale"])
        self.ref_min_score, self.ref_max_score = state.get("ref_min_score"), state.get("ref_max_score")
        self.statistics_fitted = True
        self.dataset_source = None  # a file you did not make never decides what is read


def grad_norm(module: th.nn.Module) -> th.Tensor:
    """Total L2 norm of a module's gradients (a device tensor, no host synchronisation)."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    return th.nn.utils.get_total_norm(grads) if grads else th.zeros(())


def remove_stale_temporary_files(final: pathlib.Path) -> None:
    """Remove the temporary files that saves to ``final`` killed mid-way left (those of processes no longer alive).

    :param final: the path a save writes
    """
    for stale in final.parent.glob(f".{final.name}.*.tmp.zip"):
        pid = stale.name[len(final.name) + 2 : -len(".tmp.zip")]
        if pid.isdigit() and int(pid) != os.getpid() and not _process_alive(int(pid)):
            stale.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _recover_env(data: OfflineData) -> gym.Env | None:
    # MinariDataset.recover_environment() is gym.make(env_spec); the spec is kept in OfflineData so that a dataset
    # re-opened from its id, a file or arrays all take this one path
    try:
        entry_point = getattr(data.env_spec, "entry_point", None)
        if isinstance(entry_point, str) and ":" in entry_point:
            # the env's package, imported before gym.make does it, with what it prints on import captured (Gymnasium-
            # Robotics prints a notice on the Adroit hand tasks there, unrelated to the env asked for); errors raise
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                importlib.import_module(entry_point.split(":")[0])
        return gym.make(data.env_spec)
    except Exception as error:  # the dataset's env may need packages the user lacks: spaces from the data then
        warnings.warn(f"Could not recreate the dataset's environment ({error}); using the dataset's spaces", stacklevel=2)
        return None


def _refuse_obs_normalizing_vec_env(env: Any) -> None:
    if env is None:
        return
    vec_normalize = unwrap_vec_wrapper(env, VecNormalize)
    if vec_normalize is not None and getattr(vec_normalize, "norm_obs", False):
        raise ValueError(
            "VecNormalize(norm_obs=True) cannot be used offline: its statistics only update when the env is stepped. "
            "Use normalize_observations=True, which keeps dataset statistics in the policy."
        )


def _check_common_settings(settings: dict[str, Any]) -> None:
    """Validate the settings every offline algorithm shares, before any data is read."""
    check_learning_rate("learning_rate", settings["learning_rate"])
    check_learning_rate("critic_learning_rate", settings["critic_learning_rate"])
    check_int("batch_size", settings["batch_size"])
    check_int("critic_batch_size", settings["critic_batch_size"], allow_none=True)
    check_int("critic_steps", settings["critic_steps"], minimum=0)
    check_int("bc_steps", settings["bc_steps"], minimum=0)
    check_learning_rate("bc_learning_rate", settings["bc_learning_rate"])
    check_int("bc_batch_size", settings["bc_batch_size"], allow_none=True)
    check_float("gamma", settings["gamma"], 0.0, 1.0)
    check_float("tau", settings["tau"], 0.0, 1.0)
    check_float("expectile", settings["expectile"], 0.0, 1.0, high_open=True)
    for name in ("normalize_reward", "normalize_observations", "clip_actions", "download"):
        check_bool(name, settings[name])
    resolve_precision(settings["precision"], th.device("cpu"))  # an unknown value fails here, not at learn()
    check_policy_kwargs(settings["policy_kwargs"])
    check_int("torch_threads", settings["torch_threads"], allow_none=True)
    check_compile_option(settings["torch_compile"])
