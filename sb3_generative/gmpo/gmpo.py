"""GMPO: Generative Model Policy Optimization (Zhang et al., "Revisiting Generative Policies", arXiv 2412.01245).

Advantage-weighted regression on the generative model's own training loss. With an IQL critic trained first and
then frozen, each policy step minimises

    L(theta) = mean_i[ min(exp(beta (min_k Q_k(s_i, a_i) - V(s_i))), clamp) * l_theta(s_i, a_i) ]

over dataset pairs, where l_theta is the per-sample matching loss of the generative model (noise prediction for
VP-SDE, velocity matching for GVP and I-CFM) and the weights carry no gradient. The weights are not normalised, so
beta and the clamp also scale the effective learning rate (as in GenerativeRL's ``grl/algorithms/gmpo.py``). As in
the paper, the actor starts from its random initialisation by default; ``bc_steps`` first fits it to the data with
the same loss unweighted (GenerativeRL's ``copy_from_basemodel``), which the CPU recipe uses: at a small budget the
weighted loss then refines a policy that already acts like the data instead of learning it from scratch.
"""

from typing import Any, ClassVar, TypeVar

import torch as th
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule

from sb3_generative.common.adaptive_beta import dual_step, parse_beta
from sb3_generative.common.checks import check_float
from sb3_generative.common.offline_algorithm import OfflineAlgorithm, grad_norm
from sb3_generative.gmpo.policies import CnnPolicy, GenerativePolicy, MlpPolicy, MultiInputPolicy

SelfGMPO = TypeVar("SelfGMPO", bound="GMPO")


class GMPO(OfflineAlgorithm):
    """Generative Model Policy Optimization: advantage-weighted matching loss on an offline dataset.

    Paper: https://arxiv.org/abs/2412.01245. Reference code: https://github.com/opendilab/GenerativeRL
    (``grl/algorithms/gmpo.py``).

    :param policy: "GenerativePolicy" (alias "MlpPolicy") or a policy class
    :param env: environment or id for evaluation (never stepped); None recovers it from a Minari dataset
    :param learning_rate: actor learning rate (paper: 1e-4)
    :param dataset: a local Minari id, ``MinariDataset``, D4RL-format ``.hdf5``/``.npz`` path or dict of arrays
    :param batch_size: policy minibatch size (paper: 4096)
    :param beta: inverse temperature of the advantage weights ``exp(beta A)`` (finite, >= 0); ``"auto"`` (or
        ``"auto_<initial>"``) adapts it so that the weights' effective sample size stays at ``target_ess`` of the batch
        (``common/adaptive_beta.py``), as SAC's ``ent_coef="auto"``
    :param target_ess: with ``beta="auto"``, the budget on the effective sample size of the clamped weights, as a
        share of the batch. Default 0.2: the CPU recipe's beta 3 left 23 to 89 effective samples of 256 (0.09 to
        0.35), with the weighting informative and under 1% of the weights at the clamp (``benchmarks/RESULTS.md``,
        "GMPO's effective sample size")
    :param beta_learning_rate: with ``beta="auto"``, the Adam learning rate of ``log beta``
    :param weight_clamp: upper clamp of the weights (> 0)
    :param critic_steps: IQL steps before the policy phase
    :param critic_batch_size: IQL minibatch size (None: ``batch_size``)
    :param critic_learning_rate: IQL learning rate
    :param bc_steps: behaviour-cloning steps of the actor before the critic (0: from scratch, the paper)
    :param bc_learning_rate: behaviour-cloning learning rate
    :param bc_batch_size: behaviour-cloning minibatch size (None: ``critic_batch_size`` or ``batch_size``)
    :param gamma: discount
    :param tau: Polyak coefficient of the target Q
    :param expectile: IQL expectile
    :param normalize_reward: IQL's locomotion reward scaling (stored as ``reward_scale``)
    :param normalize_observations: standardise observations with dataset statistics
    :param clip_actions: clip out-of-bounds dataset actions instead of raising
    :param download: let Minari download a missing dataset
    :param critic: a trained critic (or model, or saved model path) to reuse, or a trained d3rlpy IQL (GMPO needs its
        value function); skips critic training
    :param precision: "auto" (TF32 on CUDA, fp32 on CPU), "fp32", "tf32" or "bf16" autocast, during ``learn``
    :param torch_threads: torch's CPU threads during ``learn`` (None: as they are; 1 on a shared machine)
    :param torch_compile: compile the updates and the sampler with torch.compile (True, or a mode such as
        "reduce-overhead"); not saved with the model
    :param policy_kwargs: policy arguments: ``generative_model`` ("gvp", "vpsde", "icfm"), ``net_arch``,
        ``n_sampling_steps``, ``solver``, ...
    :param stats_window_size: unused offline, kept for SB3 compatibility
    :param tensorboard_log: tensorboard folder
    :param verbose: verbosity
    :param seed: random seed
    :param device: device
    :param _init_setup_model: build the networks at construction
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "GenerativePolicy": GenerativePolicy,
        "MlpPolicy": MlpPolicy,
        "MultiInputPolicy": MultiInputPolicy,
        "CnnPolicy": CnnPolicy,
    }

    def __init__(
        self,
        policy: str | type[GenerativePolicy],
        env: GymEnv | str | None,
        learning_rate: float | Schedule = 1e-4,
        dataset: Any = None,
        batch_size: int = 4096,
        beta: float | str = 1.0,
        weight_clamp: float = 100.0,
        target_ess: float = 0.2,
        beta_learning_rate: float = 1e-3,
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
        _init_setup_model: bool = True,
    ) -> None:
        parse_beta(beta)
        check_float("weight_clamp", weight_clamp, 0.0)
        check_float("target_ess", target_ess, 0.0, 1.0)
        check_float("beta_learning_rate", beta_learning_rate, 0.0)
        self.beta, self.weight_clamp = beta, weight_clamp
        self.target_ess, self.beta_learning_rate = target_ess, beta_learning_rate
        super().__init__(
            policy,
            env,
            learning_rate=learning_rate,
            dataset=dataset,
            batch_size=batch_size,
            critic_steps=critic_steps,
            critic_batch_size=critic_batch_size,
            critic_learning_rate=critic_learning_rate,
            bc_steps=bc_steps,
            bc_learning_rate=bc_learning_rate,
            bc_batch_size=bc_batch_size,
            gamma=gamma,
            tau=tau,
            expectile=expectile,
            normalize_reward=normalize_reward,
            normalize_observations=normalize_observations,
            clip_actions=clip_actions,
            download=download,
            critic=critic,
            precision=precision,
            torch_threads=torch_threads,
            torch_compile=torch_compile,
            policy_kwargs=policy_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            seed=seed,
            device=device,
        )
        if _init_setup_model:
            self._setup_model()

    def policy_loss(self, obs: th.Tensor, actions: th.Tensor) -> tuple[th.Tensor, dict[str, th.Tensor]]:
        """GMPO's loss on a batch and its detached statistics.

        :param obs: normalised states (B, n)
        :param actions: dataset actions in [-1, 1] (B, d)
        :return: (loss, statistics)
        """
        beta = self.beta_value  # the setting, or the adapted value (beta="auto")
        with th.no_grad():
            advantage = self.critic.advantage(obs, actions)
            weights = th.exp(beta * advantage)
            clamped = weights.clamp(max=self.weight_clamp)
        matching = self.actor.per_sample_loss(actions, obs)
        loss = (clamped * matching).mean()
        stats = {
            "policy_loss": loss.detach(),
            "matching_loss": matching.detach().mean(),
            "advantage": advantage.mean(),
            "weight": weights.mean(),
            "clamped_weight": clamped.mean(),
            "weight_clamped_fraction": (weights > self.weight_clamp).float().mean(),
            # Kish's effective sample size of the clamped weights, as a fraction of the batch: 1 for equal weights,
            # 1/B when one sample carries them all
            "weight_ess": clamped.sum() ** 2 / (clamped.square().sum() * clamped.numel()).clamp(min=1e-30),
            "beta": th.as_tensor(beta, dtype=th.float32).detach(),
        }
        return loss, stats

    #: dataset states on which the advantage of pi's actions over the data's is measured at each log
    HEALTH_STATES = 256

    @th.no_grad()
    def _check_health(self, train: dict[str, float]) -> None:
        """Log ``train/advantage_over_data``: the critic's mean of ``Q(s, a_pi) - Q(s, a_data)`` on a fixed set of
        dataset states, pi's action being ``predict``'s (solved from zero noise). Measured at log intervals only (a
        sampling solve), on states drawn once with a generator of their own, so training's random numbers are
        untouched."""
        buffer = self.replay_buffer
        if buffer is None:
            return
        idx: th.Tensor | None = getattr(self, "_health_indices", None)
        if idx is None or idx.device != buffer.device:
            generator = th.Generator(device=buffer.device).manual_seed(0)
            idx = th.randint(0, len(buffer), (self.HEALTH_STATES,), device=buffer.device, generator=generator)
            self._health_indices = idx
        obs = self.policy.normalize_obs(buffer.observations[idx])
        noise = th.zeros(len(idx), self.actor.action_dim, device=obs.device)
        actions = self.actor.sample(obs, noise).clamp(-1.0, 1.0)
        gain = (self.critic.q_value(obs, actions) - self.critic.q_value(obs, buffer.actions[idx])).mean()
        self.logger.record("train/advantage_over_data", float(gain))

    def _compile_regions(self) -> dict[str, Any]:
        return {**super()._compile_regions(), "policy_loss": self.policy_loss}

    def train(self, gradient_steps: int, batch_size: int) -> None:
        """GMPO policy steps: sample, weight by the frozen critic, one Adam step on the weighted matching loss.

        :param gradient_steps: number of steps
        :param batch_size: minibatch size
        """
        buffer = self._require_dataset()
        self._update_learning_rate(self.policy.optimizer)
        for _ in range(gradient_steps):
            batch = buffer.sample(batch_size)
            policy_loss = self._region("policy_loss", self.policy_loss)
            loss, stats = policy_loss(self.policy.normalize_obs(batch.observations), batch.actions)
            self.policy.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            stats["grad_norm"] = grad_norm(self.actor)
            self.policy.optimizer.step()
            if self.log_beta is not None and self.beta_optimizer is not None:  # beta="auto": ESS to target_ess
                dual_step(self.log_beta, self.beta_optimizer, stats["weight_ess"], self.target_ess, False)
            self._record_train_stats(stats, watched=("policy_loss", "grad_norm"))
        self._n_updates += gradient_steps

    def learn(
        self: SelfGMPO,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int | None = 5000,
        tb_log_name: str = "GMPO",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfGMPO:
        return super().learn(total_timesteps, callback, log_interval, tb_log_name, reset_num_timesteps, progress_bar)
