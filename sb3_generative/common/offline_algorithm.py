"""Base class of the offline algorithms: SB3's ``BaseAlgorithm`` trained by gradient steps on a fixed dataset.

It follows sb3-contrib's ARS in subclassing ``BaseAlgorithm`` directly (reference/sb3.md 1.11): ``num_timesteps``
counts policy gradient steps, with one ``callback.on_step()`` each, so ``EvalCallback``, ``CheckpointCallback``,
``log_interval`` and the progress bar all speak in gradient steps. The environment is never stepped; it is kept
for evaluation callbacks and RL Zoo. The dataset lives on the training device in an
:class:`~sb3_generative.common.buffers.OfflineReplayBuffer` and never goes into a saved zip.
"""

import io
import os
import pathlib
import sys
import time
import warnings
from collections import deque
from collections.abc import Iterable
from typing import Any, ClassVar, TypeVar

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.save_util import load_from_zip_file
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import configure_logger
from stable_baselines3.common.vec_env import VecNormalize, unwrap_vec_wrapper

from sb3_generative.common.buffers import OfflineReplayBuffer
from sb3_generative.common.guard import FiniteGuard
from sb3_generative.common.precision import precision_context, resolve_precision
from sb3_generative.common.datasets import (
    DatasetError,
    OfflineData,
    check_against_spaces,
    check_supported_spaces,
    load_offline_data,
    locomotion_reward_scale,
    normalized_score,
)
from sb3_generative.critics.iql import IQLCritic
from sb3_generative.policies import GenerativeActorPolicy

SelfOfflineAlgorithm = TypeVar("SelfOfflineAlgorithm", bound="OfflineAlgorithm")


class OfflineAlgorithm(BaseAlgorithm):
    """An SB3 algorithm that learns from a fixed dataset with an IQL critic and a generative actor.

    ``learn(total_timesteps)`` first runs the stages that precede the policy updates (:meth:`_pretrain`: the IQL
    critic, for GMPG the behaviour model), once, then ``total_timesteps`` policy gradient steps.

    :param policy: policy class or alias ("GenerativePolicy", "MlpPolicy")
    :param env: environment or its id, used for evaluation callbacks (never stepped); None recovers it from a
        Minari dataset, else spaces come from the data
    :param dataset: a local Minari id, a ``MinariDataset``, a D4RL-format ``.hdf5``/``.npz`` path, a dict of arrays
    :param learning_rate: actor learning rate (constant or schedule of the remaining progress)
    :param batch_size: policy minibatch size
    :param critic_steps: IQL gradient steps run at the start of the first ``learn``
    :param critic_batch_size: IQL minibatch size (None: ``batch_size``)
    :param critic_learning_rate: Adam learning rate of Q and V
    :param gamma: discount
    :param tau: Polyak coefficient of the target Q
    :param expectile: IQL expectile (0.7 locomotion, 0.9 AntMaze)
    :param normalize_reward: scale rewards by ``1000 / (max episode return - min episode return)`` (IQL's
        locomotion scheme); the factor is stored with the model as ``reward_scale``
    :param normalize_observations: standardise observations with the dataset's mean and std (kept in the policy)
    :param clip_actions: clip dataset actions outside the action space instead of raising
    :param download: let Minari download a dataset id missing locally
    :param critic: a trained :class:`IQLCritic` (for example ``other_model.critic``), a model, or a saved model's
        path, whose critic is copied in; its training is then skipped
    :param precision: precision of the training updates: "auto" (TF32 matrix products on CUDA, fp32 on CPU),
        "fp32", "tf32" or "bf16" (autocast); applied during ``learn`` only
    :param policy_kwargs: policy arguments (``generative_model``, ``net_arch``, ``n_sampling_steps``, ...)
    :param stats_window_size: SB3's window for rollout statistics (unused offline)
    :param tensorboard_log: tensorboard log folder
    :param verbose: 0 silent, 1 info, 2 debug
    :param seed: random seed: same seed, same training on CPU
    :param device: "cpu", "cuda" or "auto"
    :param _init_setup_model: build the networks at construction
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "GenerativePolicy": GenerativeActorPolicy,
        "MlpPolicy": GenerativeActorPolicy,
    }
    policy: GenerativeActorPolicy
    replay_buffer: OfflineReplayBuffer | None
    #: losses averaged between two log dumps, kept on the device until then
    _train_stats: dict[str, th.Tensor]

    def __init__(
        self,
        policy: str | type[GenerativeActorPolicy],
        env: GymEnv | str | None,
        dataset: Any = None,
        learning_rate: float | Schedule = 1e-4,
        batch_size: int = 4096,
        critic_steps: int = 200_000,
        critic_batch_size: int | None = None,
        critic_learning_rate: float = 3e-4,
        gamma: float = 0.99,
        tau: float = 0.005,
        expectile: float = 0.7,
        normalize_reward: bool = True,
        normalize_observations: bool = False,
        clip_actions: bool = False,
        download: bool = False,
        critic: Any = None,
        precision: str = "auto",
        policy_kwargs: dict[str, Any] | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        data = load_offline_data(dataset, download=download) if dataset is not None else None
        if env is None and data is not None and data.env_spec is not None:
            env = _recover_env(data)
        super().__init__(
            policy,
            env,
            learning_rate,
            policy_kwargs=policy_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            device=device,
            support_multi_env=False,
            seed=seed,
        )
        if self.env is None and data is not None:
            self.observation_space, self.action_space = data.observation_space, data.action_space
        if _init_setup_model and not hasattr(self, "observation_space"):
            raise ValueError("An offline algorithm needs an env or a dataset to know its spaces")
        if hasattr(self, "observation_space"):
            check_supported_spaces(self.observation_space, self.action_space)
        _refuse_obs_normalizing_vec_env(self.env)
        self.batch_size, self.critic_steps = batch_size, critic_steps
        self.critic_batch_size = critic_batch_size
        self.critic_learning_rate, self.gamma, self.tau, self.expectile = critic_learning_rate, gamma, tau, expectile
        self.normalize_reward, self.normalize_observations = normalize_reward, normalize_observations
        self.clip_actions, self.download = clip_actions, download
        self.precision = precision
        resolve_precision(precision, th.device("cpu"))  # an unknown value fails here, not at learn()
        self.replay_buffer = None
        self.dataset_source: str | None = None
        self.reward_scale = 1.0
        self.statistics_fitted = False
        self.critic_steps_done = 0
        self.pretrain_done = False
        self._train_stats, self._train_stats_count = {}, 0
        if _init_setup_model:
            self._setup_model()
            if data is not None:
                self.set_dataset(data)
            if critic is not None:
                self.load_critic(critic)

    # ------------------------------------------------------------------------------------------------ set-up
    def _setup_model(self) -> None:
        self._setup_lr_schedule()
        self.set_random_seed(self.seed)
        self.policy = self.policy_class(  # type: ignore[assignment]
            self.observation_space, self.action_space, self.lr_schedule, **self.policy_kwargs
        )
        self.policy = self.policy.to(self.device)
        self._configure_critic()
        self._create_aliases()
        self._train_stats, self._train_stats_count = {}, 0
        self._guard = FiniteGuard(self.policy, [self.policy.optimizer, self.policy.critic.optimizer])
        # random-number states saved with the model, so that a loaded model continues exactly (see save())
        self.rng_state = th.get_rng_state()
        self.sampler_rng_state = th.Generator().get_state()

    def _configure_critic(self) -> None:
        critic = self.policy.critic
        critic.gamma, critic.tau, critic.expectile = self.gamma, self.tau, self.expectile
        for group in critic.optimizer.param_groups:
            group["lr"] = self.critic_learning_rate

    def _create_aliases(self) -> None:
        self.actor = self.policy.actor
        self.critic: IQLCritic = self.policy.critic

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "actor", "critic", "_train_stats", "_guard", "_restore_rng_on_learn"]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        return ["policy", "policy.optimizer", "policy.critic.optimizer"], ["rng_state", "sampler_rng_state"]

    def save(
        self,
        path: str | pathlib.Path | io.BufferedIOBase,
        exclude: Iterable[str] | None = None,
        include: Iterable[str] | None = None,
    ) -> None:
        """Save the model (never the dataset) atomically: a temporary file in the same folder, then a rename, so an
        interrupted save never leaves a truncated zip in place of a good one. The random-number states of torch and
        of the dataset sampler are saved too, so that ``load`` then ``learn(..., reset_num_timesteps=False)``
        continues a CPU run bit for bit.

        :param path: file path (".zip" is added when there is no suffix) or a file-like object
        :param exclude: attributes not to save
        :param include: attributes to save even if excluded by default
        """
        self.rng_state = th.get_rng_state()
        if self.replay_buffer is not None and self.replay_buffer.device.type == "cpu":
            self.sampler_rng_state = self.replay_buffer.generator.get_state()
        if not isinstance(path, (str, os.PathLike)):
            super().save(path, exclude, include)
            return
        final = pathlib.Path(path)
        if final.suffix == "":
            final = final.with_suffix(".zip")
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp.zip")
        try:
            super().save(tmp, exclude, include)
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)

    # ------------------------------------------------------------------------------------------------ data
    def set_dataset(self, dataset: Any) -> None:
        """Attach a dataset (after ``load()``, or to train on new data): validated, flattened, moved to the device.

        The reward scale and observation statistics are computed from the first dataset and then kept, so a loaded
        model continues with the scale its critic was trained with.

        :param dataset: any form accepted by the constructor's ``dataset``
        """
        data = load_offline_data(dataset, download=self.download)
        check_against_spaces(data, self.observation_space, self.action_space, clip_actions=self.clip_actions)
        if not self.statistics_fitted:
            self._fit_statistics(data)
        self.dataset_source = data.source
        assert isinstance(self.action_space, spaces.Box)  # checked above
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
            mean = th.as_tensor(data.observations.mean(axis=0))
            std = th.as_tensor(data.observations.std(axis=0)).clamp(min=1e-3)
            self.policy.set_observation_stats(mean, std)
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

        :param source: an :class:`IQLCritic`, an :class:`OfflineAlgorithm`, or a path to a saved model's zip
        """
        if isinstance(source, OfflineAlgorithm):
            self._check_compatible_statistics(source)
            source = source.critic
        if isinstance(source, IQLCritic):
            state = source.state_dict()
        elif isinstance(source, (str, pathlib.Path, io.BufferedIOBase)):
            _, params, _ = load_from_zip_file(source, device=self.device)
            if params is None or "policy" not in params:
                raise ValueError(f"{source!r} holds no policy parameters to take a critic from")
            prefix = "critic."
            policy_state: dict[str, th.Tensor] = params["policy"]  # type: ignore[assignment]
            state = {k[len(prefix) :]: v for k, v in policy_state.items() if k.startswith(prefix)}
        else:
            raise TypeError(f"critic must be an IQLCritic, an OfflineAlgorithm or a path, got {type(source).__name__}")
        try:
            self.critic.load_state_dict(state)
        except RuntimeError as error:
            raise ValueError(f"The critic does not fit this model (different sizes or ensemble): {error}") from error
        self.critic_steps_done = self.critic_steps

    def _check_compatible_statistics(self, other: "OfflineAlgorithm") -> None:
        if not np.isclose(other.reward_scale, self.reward_scale, rtol=1e-6):
            raise ValueError(
                f"The critic was trained with reward scale {other.reward_scale:.6g}, this model uses "
                f"{self.reward_scale:.6g}: Q values would be on another scale"
            )
        if not (
            th.allclose(other.policy.obs_mean.cpu(), self.policy.obs_mean.cpu())
            and th.allclose(other.policy.obs_std.cpu(), self.policy.obs_std.cpu())
        ):
            raise ValueError("The critic was trained with other observation statistics (normalize_observations differs)")

    def _train_critic(self, progress_bar: bool, log_interval: int) -> None:
        """IQL critic phase: ``critic_steps`` updates, logged under ``critic/*``."""
        buffer = self._require_dataset()
        batch_size = self.critic_batch_size or self.batch_size
        remaining = self.critic_steps - self.critic_steps_done
        if remaining <= 0:
            return
        self.policy.set_training_mode(True)
        self.critic.q_funcs.requires_grad_(True)
        self.critic.value_func.requires_grad_(True)
        stats: dict[str, th.Tensor] = {}
        with _PhaseBar(progress_bar, remaining, "critic") as bar:
            for _ in range(remaining):
                batch = buffer.sample(batch_size)
                q_loss, v_loss = self.critic.update(
                    self.policy.normalize_obs(batch.observations),
                    batch.actions,
                    batch.rewards,
                    self.policy.normalize_obs(batch.next_observations),
                    batch.dones,
                )
                self.critic_steps_done += 1
                self._guard.watch(self.critic_steps_done, {"q_loss": q_loss, "v_loss": v_loss})
                _accumulate(stats, {"q_loss": q_loss, "v_loss": v_loss})
                bar.update(1)
                if self.critic_steps_done % log_interval == 0 or self.critic_steps_done == self.critic_steps:
                    self._guard.check("critic", f"critic step {self.critic_steps_done}")
                    self._dump_phase_logs("critic", stats, self.critic_steps_done)
                    stats = {}

    def _dump_phase_logs(self, phase: str, stats: dict[str, th.Tensor], step: int) -> None:
        count = stats.pop("_count", None)
        for key, total in stats.items():
            self.logger.record(f"{phase}/{key}", (total / count).item() if count is not None else total.item())
        self.logger.record(f"{phase}/step", step)
        self.logger.dump(step=step)

    # ------------------------------------------------------------------------------------------------ learn
    def _pretrain(self, progress_bar: bool, log_interval: int) -> None:
        """Stages before the policy updates, run once over a model's life (GMPO: the IQL critic)."""
        self._train_critic(progress_bar, log_interval)

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

    def learn(
        self: SelfOfflineAlgorithm,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 100,
        tb_log_name: str = "run",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfOfflineAlgorithm:
        """Train: the pre-training stages once, then ``total_timesteps`` policy gradient steps.

        :param total_timesteps: number of policy gradient steps
        :param callback: SB3 callback(s), called after every gradient step
        :param log_interval: gradient steps between two log dumps
        :param tb_log_name: name of the tensorboard run
        :param reset_num_timesteps: restart the step counter (False continues it)
        :param progress_bar: show progress bars (critic / behaviour-cloning phases and policy phase)
        :return: the trained model
        """
        self._require_dataset()
        if getattr(self, "_restore_rng_on_learn", False):  # continue a saved run exactly
            th.set_rng_state(self.rng_state.cpu())
            self._restore_rng_on_learn = False
        total_timesteps, callback = self._setup_learn(
            total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar
        )
        self._guard.take_snapshot("the start of learn()")
        with precision_context(getattr(self, "precision", "auto"), self.device):  # older saves lack it
            self._pretrain(progress_bar, log_interval)
            self.start_time = time.time_ns()  # fps of the policy phase only
            callback.on_training_start(locals(), globals())
            self.policy.set_training_mode(True)
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
        self.policy.set_training_mode(False)
        callback.on_training_end()
        return self

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
        _accumulate(self._train_stats, {key: value.float() for key, value in stats.items()})  # bf16 under autocast
        self._train_stats_count += 1
        if watched:
            self._guard.watch(self.num_timesteps + 1, {key: stats[key] for key in watched})

    def dump_logs(self) -> None:
        """Write ``time/*`` and the ``train/*`` means since the last dump."""
        time_elapsed = max((time.time_ns() - self.start_time) / 1e9, sys.float_info.epsilon)
        fps = int((self.num_timesteps - self._num_timesteps_at_start) / time_elapsed)
        self.logger.record("time/fps", fps)
        self.logger.record("time/time_elapsed", int(time_elapsed), exclude="tensorboard")
        self.logger.record("time/total_timesteps", self.num_timesteps, exclude="tensorboard")
        count = self._train_stats.pop("_count", None)
        if count is not None:
            means = th.stack(list(self._train_stats.values())) / count
            for key, value in zip(self._train_stats, means.tolist()):
                self.logger.record(f"train/{key}", value)
        self._train_stats = {}
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
        **kwargs: Any,
    ) -> SelfOfflineAlgorithm:
        """Load a model; ``dataset=`` (or :meth:`set_dataset` later) lets training continue.

        Without a dataset the model predicts, and ``learn`` re-opens the dataset it was trained on when that was a
        Minari id or a file path.

        :param path: saved zip
        :param env: environment (spaces must match)
        :param device: device to load on
        :param custom_objects: objects replacing saved ones
        :param print_system_info: print the saving and loading systems
        :param force_reset: as in SB3
        :param dataset: dataset to attach for further training
        :param kwargs: attributes to set on the loaded model
        """
        model = super().load(path, env, device, custom_objects, print_system_info, force_reset, **kwargs)
        model._configure_critic()
        model._restore_rng_on_learn = True
        if dataset is not None:
            model.set_dataset(dataset)
        return model


def grad_norm(module: th.nn.Module) -> th.Tensor:
    """Total L2 norm of a module's gradients (a device tensor, no host synchronisation)."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    return th.nn.utils.get_total_norm(grads) if grads else th.zeros(())


def _accumulate(totals: dict[str, th.Tensor], stats: dict[str, th.Tensor]) -> None:
    for key, value in stats.items():
        value = value.detach().float()
        totals[key] = totals[key] + value if key in totals else value.clone()
    totals["_count"] = totals.get("_count", th.zeros(())) + 1


def _recover_env(data: OfflineData) -> gym.Env | None:
    try:
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


class _PhaseBar:
    """A tqdm bar for a pre-training phase when progress bars are on; a no-op otherwise."""

    def __init__(self, enabled: bool, total: int, desc: str) -> None:
        self.enabled, self.total, self.desc = enabled, total, desc
        self.bar: Any = None

    def __enter__(self) -> "_PhaseBar":
        if self.enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, desc=self.desc, unit="step")
        return self

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.close()
