"""GMPG: Generative Model Policy Gradient (Zhang et al., "Revisiting Generative Policies", arXiv 2412.01245).

Stages (reference/generativerl.md 2.1): behaviour cloning of a base model mu by flow matching, the IQL critic,
pi initialised from mu, mu frozen; then pathwise policy gradient steps on

    L(theta) = mean_s[ -beta min_k Q_k(s, a_theta) + (log pi_theta(a_theta | s) - log mu(a_theta | s)) / (d ln 2) ]

with a_theta = Phi_theta(z; s) the ODE sample from z ~ N(0, I), differentiated through the solver. The second term
is a one-sample estimate of KL(pi || mu) in bits per action dimension. Log-densities come from the instantaneous
change of variables with the exact divergence (Hutchinson as an option); log pi is accumulated along the sampling
solve itself, so one step costs two augmented solves (pi forward, mu backward) instead of the reference's three
1000-point adjoint solves, and its gradients are exact rather than the reference's approximation.
"""

import math
from typing import Any, ClassVar, TypeVar

import torch as th
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule

from sb3_generative.common.offline_algorithm import OfflineAlgorithm, _accumulate, _PhaseBar, grad_norm
from sb3_generative.common.optim import adam
from sb3_generative.generative.likelihood import DIVERGENCES
from sb3_generative.generative.model import check_jitter
from sb3_generative.generative.solvers import ADAPTIVE_SOLVERS
from sb3_generative.policies import GMPGPolicy

SelfGMPG = TypeVar("SelfGMPG", bound="GMPG")
GRADIENT_METHODS = ("backprop", "checkpoint", "adjoint")


class GMPG(OfflineAlgorithm):
    """Generative Model Policy Gradient with exact likelihood gradients.

    Paper: https://arxiv.org/abs/2412.01245. Reference code: https://github.com/opendilab/GenerativeRL
    (``grl/algorithms/gmpg.py``).

    :param policy: "GenerativePolicy" (alias "MlpPolicy") or a policy class
    :param env: environment or id for evaluation (never stepped); None recovers it from a Minari dataset
    :param dataset: a local Minari id, ``MinariDataset``, D4RL-format ``.hdf5``/``.npz`` path or dict of arrays
    :param learning_rate: policy-gradient learning rate (paper: 1e-6 to 1e-4 per task)
    :param batch_size: states per policy-gradient step (paper: 40960)
    :param beta: weight of ``-Q`` against the KL term
    :param bc_steps: flow-matching behaviour-cloning steps of mu before the critic
    :param bc_learning_rate: behaviour-cloning learning rate
    :param bc_batch_size: behaviour-cloning minibatch size (None: ``critic_batch_size`` or ``batch_size``)
    :param n_gradient_steps: solver steps of the differentiated sample and of both likelihood solves (8 RK4 steps on
        a grid of power 2 give the KL and the policy gradient of a 1000-point Euler grid, also at the samples of a
        trained pi, and train pi to the same KL and, within noise, the same scores on hopper: benchmarks/RESULTS.md)
    :param gradient_solver: fixed-grid solver of those solves ("euler", "midpoint", "rk4"). Euler's error is a gap
        the optimiser exploits as a fake negative KL: with 8 Euler steps the forward-solve log pi and the
        backward-solve log mu of the same model differ by 0.3 nats on a narrow Gaussian (benchmarks/RESULTS.md)
    :param divergence: "exact" (d vector-Jacobian products, exact gradients) or "hutchinson"
    :param gradient_method: "backprop" through the solver, "checkpoint" (recompute each step, memory linear in
        the batch only) or "adjoint" (torchdiffeq's adjoint method)
    :param chunk_size: states per forward/backward pass; gradients of the chunks are summed before one step
        (None: the whole batch at once)
    :param grid_jitter: move the interior points of those solves' grids randomly, by up to this fraction of a step,
        at every update (0: fixed grids; at most 1, so that points never swap). A fixed grid lets pi hide structure
        between its evaluation times and fake a negative KL; a fresh grid each update closes that loophole
    :param grid_power: exponent of those grids: 1 is uniform, p > 1 puts the points at fractions ``1 - (1 - u)^p``
        of the way to the data end, where a narrow conditional distribution makes the flow contract fastest. Pi moves
        its samples to wherever the likelihood solves err, so they must be accurate off mu's data too: on hopper a
        uniform 4-step grid let pi fake a KL of -0.21 bits/dim (1000-point grid: +0.17), where 8 steps at power 2
        give 0.14 (benchmarks/RESULTS.md)
    :param kl_batch_size: states of each update whose KL term is estimated (the first ones; the Q term uses all of
        them); None estimates it on every state, the paper's estimator. Per state, the KL's two augmented solves cost
        about 8 times the differentiable sample that the Q term needs (d = 6), so at the default batch of 4096 the
        default of 256 makes an update about 7 times cheaper (53 GMPO updates instead of about 370). The estimate
        stays unbiased, only noisier: on hopper, with the KL on 16 of 256 states the scores wandered, on 256 states
        (of 256, 1024 or 4096) every run reached 97 to 98 (benchmarks/RESULTS.md)
    :param critic_steps: IQL steps (skipped with ``critic=``)
    :param critic_batch_size: IQL minibatch size (None: ``batch_size``)
    :param critic_learning_rate: IQL learning rate
    :param gamma: discount
    :param tau: Polyak coefficient of the target Q
    :param expectile: IQL expectile
    :param normalize_reward: IQL's locomotion reward scaling (stored as ``reward_scale``)
    :param normalize_observations: standardise observations with dataset statistics
    :param clip_actions: clip out-of-bounds dataset actions instead of raising
    :param download: let Minari download a missing dataset
    :param critic: a trained critic (or model, or saved model path) to reuse
    :param precision: "auto" (TF32 on CUDA, fp32 on CPU), "fp32", "tf32" or "bf16" autocast, during ``learn``
    :param policy_kwargs: policy arguments (``generative_model``, ``net_arch``, ``n_sampling_steps``, ...)
    :param stats_window_size: unused offline
    :param tensorboard_log: tensorboard folder
    :param verbose: verbosity
    :param seed: random seed
    :param device: device
    :param _init_setup_model: build the networks at construction
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {"GenerativePolicy": GMPGPolicy, "MlpPolicy": GMPGPolicy}
    policy: GMPGPolicy

    def __init__(
        self,
        policy: str | type[GMPGPolicy],
        env: GymEnv | str | None,
        dataset: Any = None,
        learning_rate: float | Schedule = 1e-4,
        batch_size: int = 4096,
        beta: float = 1.0,
        bc_steps: int = 200_000,
        bc_learning_rate: float = 1e-4,
        bc_batch_size: int | None = None,
        n_gradient_steps: int = 8,
        gradient_solver: str = "rk4",
        divergence: str = "exact",
        gradient_method: str = "backprop",
        chunk_size: int | None = None,
        grid_jitter: float = 1.0,
        grid_power: float = 2.0,
        kl_batch_size: int | None = 256,
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
        _check_choice("divergence", divergence, DIVERGENCES)
        _check_choice("gradient_method", gradient_method, GRADIENT_METHODS)
        if gradient_solver in ADAPTIVE_SOLVERS:
            raise ValueError(f"gradient_solver must be a fixed-grid solver (euler, midpoint, rk4), got {gradient_solver!r}")
        self.beta, self.bc_steps, self.bc_learning_rate, self.bc_batch_size = beta, bc_steps, bc_learning_rate, bc_batch_size
        self.n_gradient_steps, self.gradient_solver = n_gradient_steps, gradient_solver
        self.divergence, self.gradient_method, self.chunk_size = divergence, gradient_method, chunk_size
        if not isinstance(n_gradient_steps, int) or n_gradient_steps < 1:
            raise ValueError(f"n_gradient_steps must be a positive number of solver steps, got {n_gradient_steps!r}")
        if grid_power < 1.0:
            raise ValueError(f"grid_power must be at least 1 (1: uniform grid), got {grid_power}")
        self.grid_jitter, self.grid_power = check_jitter(grid_jitter), grid_power
        if kl_batch_size is not None and (
            isinstance(kl_batch_size, bool) or not isinstance(kl_batch_size, int) or kl_batch_size < 1
        ):
            raise ValueError(f"kl_batch_size must be a positive number of states or None (all), got {kl_batch_size!r}")
        self.kl_batch_size = kl_batch_size
        self.bc_steps_done = 0
        super().__init__(
            policy,
            env,
            dataset=dataset,
            learning_rate=learning_rate,
            batch_size=batch_size,
            critic_steps=critic_steps,
            critic_batch_size=critic_batch_size,
            critic_learning_rate=critic_learning_rate,
            gamma=gamma,
            tau=tau,
            expectile=expectile,
            normalize_reward=normalize_reward,
            normalize_observations=normalize_observations,
            clip_actions=clip_actions,
            download=download,
            critic=critic,
            precision=precision,
            policy_kwargs=policy_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            seed=seed,
            device=device,
            _init_setup_model=_init_setup_model,
        )

    # ------------------------------------------------------------------------------------------------ stages
    def _pretrain(self, progress_bar: bool, log_interval: int) -> None:
        """Behaviour cloning of mu (then copied into pi and frozen), then the IQL critic."""
        self._behaviour_cloning(progress_bar, log_interval)
        self._train_critic(progress_bar, log_interval)

    def _behaviour_cloning(self, progress_bar: bool, log_interval: int) -> None:
        """Flow-matching BC of the actor for ``bc_steps``; then mu <- pi (reference 2.1, stage 3)."""
        remaining = self.bc_steps - self.bc_steps_done
        if remaining <= 0:
            return
        buffer = self._require_dataset()
        batch_size = self.bc_batch_size or self.critic_batch_size or self.batch_size
        optimizer = adam(self.actor.parameters(), self.bc_learning_rate)
        self.policy.set_training_mode(True)
        stats: dict[str, th.Tensor] = {}
        with _PhaseBar(progress_bar, remaining, "behaviour cloning") as bar:
            for _ in range(remaining):
                batch = buffer.sample(batch_size)
                loss = self.actor.per_sample_loss(batch.actions, self.policy.normalize_obs(batch.observations)).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                _accumulate(stats, {"loss": loss.detach()})
                self.bc_steps_done += 1
                self._guard.watch(self.bc_steps_done, {"bc_loss": loss})
                bar.update(1)
                if self.bc_steps_done % log_interval == 0 or self.bc_steps_done == self.bc_steps:
                    self._guard.check("behaviour-cloning", f"behaviour-cloning step {self.bc_steps_done}")
                    self._dump_phase_logs("bc", stats, self.bc_steps_done)
                    stats = {}
        self.policy.reference.load_state_dict(self.actor.state_dict())

    # ------------------------------------------------------------------------------------------------ loss
    def _solve_kwargs(self) -> dict[str, Any]:
        return dict(
            n_steps=self.n_gradient_steps,
            solver=self.gradient_solver,
            divergence=self.divergence,
            with_grad=True,
            use_checkpoint=self.gradient_method == "checkpoint",
            adjoint=self.gradient_method == "adjoint",
            grid_jitter=self.grid_jitter,
            grid_power=self.grid_power,
        )

    def policy_loss(
        self, obs: th.Tensor, noise: th.Tensor | None = None, kl_states: int | None = None
    ) -> tuple[th.Tensor, dict[str, th.Tensor]]:
        """GMPG's objective on a batch of states and its detached statistics.

        ``mean_i(-beta Q(s_i, a_i)) + mean_{i < k}((log pi(a_i|s_i) - log mu(a_i|s_i)) / (d ln 2))`` with
        ``a_i`` the pathwise sample of pi: log pi is accumulated along the sampling solve, log mu comes from a
        backward solve of mu.

        :param obs: normalised states (B, n)
        :param noise: initial noise (B, d); None draws N(0, I)
        :param kl_states: k, the number of first states with a KL estimate (None: ``kl_batch_size``, at most B)
        :return: (loss, statistics)
        """
        k = self._kl_states(obs.shape[0]) if kl_states is None else min(max(1, kl_states), obs.shape[0])
        kwargs = self._solve_kwargs()
        if noise is None:
            noise = th.randn(obs.shape[0], self.actor.action_dim, device=obs.device, dtype=obs.dtype)
        actions, log_pi = self.actor.sample_with_log_prob(obs[:k], noise[:k], **kwargs)
        log_mu = self.policy.reference.log_prob(actions, obs[:k], **kwargs)
        if k < obs.shape[0]:  # the other states only need a differentiable action for the Q term
            sample_kwargs = {key: value for key, value in kwargs.items() if key != "divergence"}
            rest = self.actor.sample(obs[k:], noise[k:], **sample_kwargs)
            actions = th.cat([actions, rest])
        q_value = self.critic.q_value(obs, actions).squeeze(-1)
        bits = self.actor.action_dim * math.log(2.0)
        kl = (log_pi - log_mu) / bits  # one-sample KL(pi || mu) in bits per dimension
        loss = -self.beta * q_value.mean() + kl.mean()
        stats = {
            "policy_loss": loss.detach(),
            "q": q_value.detach().mean(),
            "kl": kl.detach().mean(),
            "log_pi": log_pi.detach().mean(),
            "log_mu": log_mu.detach().mean(),
        }
        return loss, stats

    def train(self, gradient_steps: int, batch_size: int) -> None:
        """Pathwise policy-gradient steps; large batches are processed in chunks and their gradients summed.

        :param gradient_steps: number of steps
        :param batch_size: states per step
        """
        buffer = self._require_dataset()
        self._update_learning_rate(self.policy.optimizer)
        self.critic.requires_grad_(False)  # the critic only passes gradients to the actions
        chunk = self.chunk_size or batch_size
        kl_total = self._kl_states(batch_size)
        for _ in range(gradient_steps):
            obs = self.policy.normalize_obs(buffer.sample(batch_size).observations)
            self.policy.optimizer.zero_grad(set_to_none=True)
            step_stats: dict[str, th.Tensor] = {}
            for part in obs.split(chunk):
                weight = part.shape[0] / batch_size
                # each chunk estimates the KL on its share of the update's KL states; its mean is unbiased, so the
                # chunks' weighted losses add up to an unbiased estimate of the whole batch's
                loss, stats = self.policy_loss(part, kl_states=round(kl_total * weight))
                (loss * weight).backward()  # the chunks' gradients add up to the whole batch's
                for key, value in stats.items():
                    step_stats[key] = step_stats[key] + weight * value if key in step_stats else weight * value
            step_stats["grad_norm"] = grad_norm(self.actor)
            self.policy.optimizer.step()
            self._record_train_stats(step_stats, watched=("policy_loss", "grad_norm"))
        self._n_updates += gradient_steps

    def _kl_states(self, batch_size: int) -> int:
        """How many of ``batch_size`` states get a KL estimate: ``kl_batch_size``, at most all of them."""
        return batch_size if self.kl_batch_size is None else min(self.kl_batch_size, batch_size)

    def learn(
        self: SelfGMPG,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 100,
        tb_log_name: str = "GMPG",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfGMPG:
        return super().learn(total_timesteps, callback, log_interval, tb_log_name, reset_num_timesteps, progress_bar)


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
