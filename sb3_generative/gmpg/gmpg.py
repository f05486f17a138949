"""GMPG: Generative Model Policy Gradient (Zhang et al., "Revisiting Generative Policies", arXiv 2412.01245).

Phases (as GenerativeRL's ``grl/algorithms/gmpg.py`` runs them): behaviour cloning of a base model mu by flow
matching, the IQL critic, pi initialised from mu, mu frozen; then pathwise policy gradient steps on

    L(theta) = mean_s[ -beta min_k Q_k(s, a_theta) + (log pi_theta(a_theta | s) - log mu(a_theta | s)) / (d ln 2) ]

with a_theta = Phi_theta(z; s) the ODE sample from z ~ N(0, I), differentiated through the solver. The second term
is a one-sample estimate of KL(pi || mu) in bits per action dimension (for the whole action with
``kl_per_dimension=False``); ``q_scale`` divides Q, so that beta can count in units of the critic's spread over mu's
actions instead of the reward's. Log-densities come from the instantaneous
change of variables with the exact divergence (Hutchinson as an option); log pi is accumulated along the sampling
solve itself, so one step costs two augmented solves (pi forward, mu backward) instead of the reference's three
1000-point adjoint solves, and its gradients are exact rather than the reference's approximation (it detaches the
state inside the likelihood).
"""

import math
import warnings
from typing import Any, ClassVar, TypeVar

import torch as th
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule

from sb3_generative.common.adaptive_beta import dual_step, parse_beta
from sb3_generative.common.checks import check_bool, check_float, check_int
from sb3_generative.common.model_files import ModelFileError
from sb3_generative.common.offline_algorithm import OfflineAlgorithm, grad_norm
from sb3_generative.generative.config import FIXED_GRID_SOLVERS, SolveConfig
from sb3_generative.gmpg.policies import CnnPolicy, GenerativePolicy, GMPGPolicy, MlpPolicy, MultiInputPolicy

SelfGMPG = TypeVar("SelfGMPG", bound="GMPG")


class GMPG(OfflineAlgorithm):
    """Generative Model Policy Gradient with exact likelihood gradients.

    Paper: https://arxiv.org/abs/2412.01245. Reference code: https://github.com/opendilab/GenerativeRL
    (``grl/algorithms/gmpg.py``).

    :param policy: "GenerativePolicy" (alias "MlpPolicy") or a policy class
    :param env: environment or id for evaluation (never stepped); None recovers it from a Minari dataset
    :param learning_rate: policy-gradient learning rate (paper: 1e-6 to 1e-4 per task)
    :param dataset: a local Minari id, ``MinariDataset``, D4RL-format ``.hdf5``/``.npz`` path or dict of arrays
    :param batch_size: states per policy-gradient step (paper: 40960)
    :param beta: weight of ``-Q`` against the KL term; ``"auto"`` (or ``"auto_<initial>"``) adapts it so that
        KL(pi || mu) stays at ``target_kl`` (``common/adaptive_beta.py``), as SAC's ``ent_coef="auto"``
    :param target_kl: with ``beta="auto"``, the budget on KL(pi || mu) in bits for the whole action. Default 0.25:
        on hopper-medium-expert, runs that stayed within 0.14 to 0.51 bits of mu ended above it, runs at 0.6 to 0.8
        bits fell (``benchmarks/RESULTS.md``, "GMPG's learning rate")
    :param beta_learning_rate: with ``beta="auto"``, the Adam learning rate of ``log beta`` (about the most it moves
        per step: 1e-2 lets it move by a factor of 4 over the CPU recipe's 150 steps)
    :param bc_steps: flow-matching behaviour-cloning steps of mu before the critic
    :param bc_learning_rate: behaviour-cloning learning rate
    :param bc_batch_size: behaviour-cloning minibatch size (None: ``critic_batch_size`` or ``batch_size``)
    :param n_gradient_steps: solver steps of the differentiated sample and of both likelihood solves
    :param gradient_solver: fixed-grid solver of those solves ("euler", "midpoint", "rk4"); a solver's error is a gap
        the optimiser can exploit as a fake negative KL, so the default is RK4
    :param divergence: "exact" (d vector-Jacobian products, exact gradients) or "hutchinson"
    :param gradient_method: "backprop" through the solver, "checkpoint" (recompute each step, memory linear in
        the batch only) or "adjoint" (torchdiffeq's adjoint method)
    :param chunk_size: states per forward/backward pass; gradients of the chunks are summed before one step
        (None: the whole batch at once)
    :param grid_jitter: move the interior points of those solves' grids randomly, by up to this fraction of a step,
        at every update (0: fixed grids; at most 1). On a fixed grid pi can hide structure between the evaluation
        times and fake a negative KL; a fresh grid at each update closes that loophole
    :param grid_power: exponent of those grids (at least 1): 1 is uniform, p > 1 puts the points at fractions
        ``1 - (1 - u)^p`` of the way to the data end, where a narrow conditional distribution makes the flow contract
        fastest and the likelihood solves err most
    :param kl_batch_size: states of each update whose KL term is estimated (the first ones; the Q term uses all of
        them); None estimates it on every state, the paper's estimator. The estimate stays unbiased, only noisier;
        the KL's two augmented solves cost several times the differentiable sample per state, so this sets most of
        an update's cost
    :param clip_q_actions: evaluate the Q term on pi's sample clipped to the action box [-1, 1], the action
        ``predict`` returns, instead of on the raw sample. The critic was trained only on the data's actions, inside
        the box; on the raw sample the Q term rewards pi for leaving it, where Q is extrapolated and ``predict``'s
        clamp hides what training optimised. Clipped, a coordinate past the bound gets no gradient from Q and the
        KL term pulls it back towards mu. False: the paper's raw sample
    :param kl_per_dimension: the KL term in bits per action dimension, as the paper (True), or in bits for the whole
        action (False). The loss's optimum is mu tilted by ``exp(beta d ln2 Q)`` per dimension but ``exp(beta ln2 Q)``
        for the whole action: with False, one beta tilts a 6-dimensional action as much as a 3-dimensional one
    :param q_scale: divide Q by this in the Q term, so that ``beta`` is measured in units of it: None (1: the paper's
        raw Q), a positive number, or "auto": the mean over data states of the standard deviation of Q over mu's
        actions at each state (:meth:`measure_q_spread`), measured once when the policy phase starts and stored as
        ``q_scale_value``. The tilt of pi's optimum, ``exp(beta ln2 Q / q_scale)`` (KL in bits for the whole
        action), then no longer depends on how far the reward scale and the task spread Q: at a state where Q is
        about Gaussian under mu with that spread, KL(pi || mu) is about ``beta^2 ln2 / 2`` bits. Raw Q varies by
        ~7x between D4RL tasks at one reward scaling (halfcheetah-medium against hopper-medium), which made one
        beta lift hopper and collapse halfcheetah (benchmarks/RESULTS.md, "The CPU recipe")
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
    :param critic: a trained critic (or model, or saved model path) to reuse, or a trained d3rlpy Q-learning algorithm
        (ReBRAC, TD3+BC, IQL, ...) whose Q ensemble is copied in (:meth:`load_critic`)
    :param precision: "auto" (TF32 on CUDA, fp32 on CPU), "fp32", "tf32" or "bf16" autocast, during ``learn``
    :param torch_threads: torch's CPU threads during ``learn`` (None: as they are; 1 on a shared machine)
    :param torch_compile: compile the updates and the sampler with torch.compile (True, or a mode such as
        "reduce-overhead"); not saved with the model
    :param policy_kwargs: policy arguments (``generative_model``, ``net_arch``, ``n_sampling_steps``, ...)
    :param stats_window_size: unused offline
    :param tensorboard_log: tensorboard folder
    :param verbose: verbosity
    :param seed: random seed
    :param device: device
    :param _init_setup_model: build the networks at construction
    """

    critic_needs_value: ClassVar[bool] = False  # the policy gradient uses Q only: a d3rlpy ReBRAC or TD3+BC critic fits
    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "GenerativePolicy": GenerativePolicy,
        "MlpPolicy": MlpPolicy,
        "MultiInputPolicy": MultiInputPolicy,
        "CnnPolicy": CnnPolicy,
    }
    policy: GMPGPolicy

    def __init__(
        self,
        policy: str | type[GMPGPolicy],
        env: GymEnv | str | None,
        learning_rate: float | Schedule = 1e-4,
        dataset: Any = None,
        batch_size: int = 4096,
        beta: float | str = 1.0,
        target_kl: float = 0.25,
        beta_learning_rate: float = 1e-2,
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
        clip_q_actions: bool = True,
        kl_per_dimension: bool = True,
        q_scale: float | str | None = None,
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
        check_float("target_kl", target_kl, 0.0)
        check_float("beta_learning_rate", beta_learning_rate, 0.0)
        check_int("chunk_size", chunk_size, allow_none=True)
        check_int("kl_batch_size", kl_batch_size, allow_none=True)
        check_float("grid_power", grid_power, 1.0, low_open=False)
        check_bool("clip_q_actions", clip_q_actions)
        check_bool("kl_per_dimension", kl_per_dimension)
        _check_q_scale(q_scale)
        check_int("n_gradient_steps", n_gradient_steps)
        if gradient_solver not in FIXED_GRID_SOLVERS:
            raise ValueError(f"gradient_solver must be a fixed-grid solver {FIXED_GRID_SOLVERS}, got {gradient_solver!r}")
        self.beta, self.target_kl, self.beta_learning_rate = beta, target_kl, beta_learning_rate
        self._warned_health = False
        self.n_gradient_steps, self.gradient_solver = n_gradient_steps, gradient_solver
        self.divergence, self.gradient_method, self.chunk_size = divergence, gradient_method, chunk_size
        self.grid_jitter, self.grid_power, self.kl_batch_size = grid_jitter, grid_power, kl_batch_size
        self.clip_q_actions, self.kl_per_dimension = clip_q_actions, kl_per_dimension
        self.q_scale = q_scale
        self.q_scale_value: float | None = None  # what "auto" measured (set once, saved)
        self._make_solve_config()  # every solve setting fails here, before any data is read
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

    # ------------------------------------------------------------------------------------------------ set-up
    @property
    def solve_config(self) -> SolveConfig:
        """The solves of an update, from the flat settings (which RL Zoo and Optuna set by name)."""
        return self._make_solve_config()

    def _make_solve_config(self) -> SolveConfig:
        """One value for the solves of an update (steps, solver, grid, gradient method, divergence), validated."""
        config = SolveConfig(
            self.n_gradient_steps,
            self.gradient_solver,
            self.grid_power,
            self.grid_jitter,
            self.gradient_method,
            self.divergence,
        )
        return config.require_fixed_grid("gradient_solver")

    # ------------------------------------------------------------------------------------------------ phases
    def _on_behaviour_cloned(self) -> None:
        """pi starts from mu, which stays frozen."""
        self.policy.reference.load_state_dict(self.actor.state_dict())

    def _compile_regions(self) -> dict[str, Any]:
        return {**super()._compile_regions(), "policy_loss": self.policy_loss}

    def _description(self) -> dict[str, Any]:
        description = super()._description()
        description["state"]["q_scale_value"] = self.q_scale_value
        return description

    def _restore_described_state(self, state: dict[str, Any]) -> None:
        super()._restore_described_state(state)
        value = state.get("q_scale_value")
        if value is not None and not (isinstance(value, float) and math.isfinite(value) and value > 0.0):
            raise ModelFileError(f"the file's q_scale_value must be a finite number > 0 or null, got {value!r}")
        self.q_scale_value = value

    # ------------------------------------------------------------------------------------------------ Q scale
    @th.no_grad()
    def measure_q_spread(self, obs: th.Tensor, noise: th.Tensor) -> float:
        """The mean over states of the standard deviation of Q over mu's actions at each state (``q_scale="auto"``).

        :param obs: normalised states (B, n)
        :param noise: initial noise (B, m, d): m samples of mu per state
        :return: the spread, in the critic's units (min over its Q heads, on the actions the Q term sees)
        """
        n_states, n_actions, action_dim = noise.shape
        states = obs.repeat_interleave(n_actions, dim=0)
        actions = self.policy.reference.sample(states, noise.reshape(-1, action_dim), self.solve_config)
        if self.clip_q_actions:
            actions = actions.clamp(-1.0, 1.0)
        q_value = self.critic.q_value(states, actions).reshape(n_states, n_actions)
        return float(q_value.std(dim=1).mean())  # one host sync, once per model

    def _measure_q_scale(self, n_states: int = 512, n_actions: int = 16) -> float:
        """Measure and store ``q_scale_value`` on ``n_states`` dataset states, ``n_actions`` samples of mu each."""
        obs = self.policy.normalize_obs(self._require_dataset().sample(n_states).observations)
        noise = th.randn(n_states, n_actions, self.actor.action_dim, device=obs.device, dtype=obs.dtype)
        spread = self.measure_q_spread(obs, noise)
        if not (math.isfinite(spread) and spread > 0.0):
            raise ValueError(
                f"q_scale='auto' measured a spread of Q over mu's actions of {spread!r}: the critic does not tell mu's "
                "actions apart, so beta has no unit; set q_scale to a number (or None)"
            )
        self.q_scale_value = spread
        return spread

    @property
    def effective_q_scale(self) -> float:
        """What Q is divided by in the loss: 1, ``q_scale``, or the measured spread for "auto" (measured if not yet)."""
        if self.q_scale is None:
            return 1.0
        if self.q_scale == "auto":
            return self._measure_q_scale() if self.q_scale_value is None else self.q_scale_value
        return float(self.q_scale)

    # ------------------------------------------------------------------------------------------------ loss
    def policy_loss(
        self,
        obs: th.Tensor,
        noise: th.Tensor | None = None,
        kl_states: int | None = None,
        data_actions: th.Tensor | None = None,
    ) -> tuple[th.Tensor, dict[str, th.Tensor]]:
        """GMPG's objective on a batch of states and its detached statistics.

        ``mean_i(-beta Q(s_i, a_i) / q_scale) + mean_{i < k}((log pi(a_i|s_i) - log mu(a_i|s_i)) / (d ln 2))`` with
        ``a_i`` the pathwise sample of pi (clipped to the box in the Q term with ``clip_q_actions``): log pi is
        accumulated along the sampling solve, log mu comes from a backward solve of mu.

        :param obs: normalised states (B, n)
        :param noise: initial noise (B, d); None draws N(0, I)
        :param kl_states: k, the number of first states with a KL estimate (None: ``kl_batch_size``, at most B)
        :param data_actions: the dataset's actions at these states (B, d): adds ``advantage_over_data``, the critic's
            mean of ``Q(s, a_pi) - Q(s, a_data)``, what the guard of :meth:`_check_health` reads
        :return: (loss, statistics)
        """
        k = self._kl_states(obs.shape[0]) if kl_states is None else min(max(1, kl_states), obs.shape[0])
        config = self.solve_config
        if noise is None:
            noise = th.randn(obs.shape[0], self.actor.action_dim, device=obs.device, dtype=obs.dtype)
        actions, log_pi = self.actor.sample_with_log_prob(obs[:k], noise[:k], config, with_grad=True)
        log_mu = self.policy.reference.log_prob(actions, obs[:k], config, with_grad=True)
        if k < obs.shape[0]:  # the other states only need a differentiable action for the Q term
            actions = th.cat([actions, self.actor.sample(obs[k:], noise[k:], config, with_grad=True)])
        q_actions = actions.clamp(-1.0, 1.0) if self.clip_q_actions else actions  # what predict would return
        q_value = self.critic.q_value(obs, q_actions).squeeze(-1)
        bits = (self.actor.action_dim if self.kl_per_dimension else 1) * math.log(2.0)
        kl = (log_pi - log_mu) / bits  # one-sample KL(pi || mu) in bits (per dimension with kl_per_dimension)
        beta = self.beta_value  # the setting, or the adapted value (beta="auto")
        loss = -(beta / self.effective_q_scale) * q_value.mean() + kl.mean()
        stats = {
            "policy_loss": loss.detach(),
            "q": q_value.detach().mean(),
            "kl": kl.detach().mean(),
            "log_pi": log_pi.detach().mean(),
            "log_mu": log_mu.detach().mean(),
            # the critic was trained on actions in [-1, 1]; predict clamps there: pi's samples beyond it are off-data
            "outside_box_fraction": (actions.detach().abs() > 1.0).float().mean(),
            "beta": th.as_tensor(beta, dtype=th.float32).detach(),
        }
        if data_actions is not None:
            with th.no_grad():
                stats["advantage_over_data"] = (q_value.detach() - self.critic.q_value(obs, data_actions).squeeze(-1)).mean()
        return loss, stats

    def train(self, gradient_steps: int, batch_size: int) -> None:
        """Pathwise policy-gradient steps; large batches are processed in chunks and their gradients summed.

        :param gradient_steps: number of steps
        :param batch_size: states per step
        """
        buffer = self._require_dataset()
        self._update_learning_rate(self.policy.optimizer)
        self.critic.requires_grad_(False)  # the critic only passes gradients to the actions
        if self.q_scale is not None:
            self.logger.record("train/q_scale", self.effective_q_scale)  # "auto" measures it here, once
        chunk = self.chunk_size or batch_size
        kl_total = self._kl_states(batch_size)
        for _ in range(gradient_steps):
            batch = buffer.sample(batch_size)
            obs = self.policy.normalize_obs(batch.observations)
            self.policy.optimizer.zero_grad(set_to_none=True)
            step_stats: dict[str, th.Tensor] = {}
            for part, part_actions in zip(obs.split(chunk), batch.actions.split(chunk)):
                weight = part.shape[0] / batch_size
                # each chunk estimates the KL on its share of the update's KL states; its mean is unbiased, so the
                # chunks' weighted losses add up to an unbiased estimate of the whole batch's
                loss, stats = self._region("policy_loss", self.policy_loss)(
                    part, kl_states=round(kl_total * weight), data_actions=part_actions
                )
                (loss * weight).backward()  # the chunks' gradients add up to the whole batch's
                for key, value in stats.items():
                    step_stats[key] = step_stats[key] + weight * value if key in step_stats else weight * value
            step_stats["grad_norm"] = grad_norm(self.actor)
            self.policy.optimizer.step()
            if self.log_beta is not None and self.beta_optimizer is not None:  # beta="auto": KL(pi || mu) to target_kl
                kl_bits = th.as_tensor(self._kl_bits(step_stats["kl"]))
                dual_step(self.log_beta, self.beta_optimizer, kl_bits, self.target_kl, True)
            self._record_train_stats(step_stats, watched=("policy_loss", "grad_norm"))
        self._n_updates += gradient_steps

    def _kl_bits(self, kl: th.Tensor | float) -> th.Tensor | float:
        """The logged KL (per action dimension with ``kl_per_dimension``) in bits for the whole action, the unit of
        ``target_kl`` and of the guard's thresholds."""
        return kl * (self.actor.action_dim if self.kl_per_dimension else 1)

    #: pi this far from mu (bits, whole action) with the critic rating its actions no better than the data's: the
    #: flat-Q failure (RESULTS.md: runs at 0.44 to 0.8 bits fell below mu while Q on pi's samples stayed flat)
    FLAT_Q_KL = 0.5
    #: KL this large with the critic rating pi's actions above the data's: the critic exploited (RESULTS.md: a gradient
    #: spike took pi 3 to 6 bits from mu on halfcheetah-medium-expert and the score collapsed as Q rose)
    EXPLOITED_KL = 2.0

    def _check_health(self, train: dict[str, float]) -> None:
        """Warn once when the logged means show one of GMPG's two measured failures (see ``FLAT_Q_KL`` and
        ``EXPLOITED_KL``): pi far from mu for no gain the critic sees, or a gain with the KL
        running away. Read at log intervals, from the means already brought to the host for the log."""
        if self._warned_health or "kl" not in train or "advantage_over_data" not in train:
            return
        kl, gain = float(self._kl_bits(train["kl"])), train["advantage_over_data"]
        if kl > self.EXPLOITED_KL and gain > 0.0:
            problem = "the critic rates pi's actions above the data's while the KL runs away: it is likely exploited"
        elif kl > self.FLAT_Q_KL and gain <= 0.0:
            problem = "the critic rates pi's actions no better than the data's: its gradient is not leading to better actions"
        else:
            return
        self._warned_health = True
        warnings.warn(
            f"GMPG at step {self.num_timesteps}: pi is {kl:.2f} bits from mu (train/kl) and "
            f"Q(s, pi) - Q(s, a_data) = {gain:+.3g} (train/advantage_over_data); {problem}. The policy may end worse than "
            f"behaviour cloning (mu): lower beta or the learning rate, or set beta='auto' with a small target_kl",
            RuntimeWarning,
            stacklevel=2,
        )

    def _kl_states(self, batch_size: int) -> int:
        """How many of ``batch_size`` states get a KL estimate: ``kl_batch_size``, at most all of them."""
        return batch_size if self.kl_batch_size is None else min(self.kl_batch_size, batch_size)

    def learn(
        self: SelfGMPG,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int | None = 5000,
        tb_log_name: str = "GMPG",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfGMPG:
        return super().learn(total_timesteps, callback, log_interval, tb_log_name, reset_num_timesteps, progress_bar)


def _check_q_scale(q_scale: Any) -> None:
    """None, "auto" or a finite number > 0.

    :param q_scale: the setting
    """
    if q_scale is None or q_scale == "auto":
        return
    try:
        check_float("q_scale", q_scale, 0.0)
    except ValueError as error:
        raise ValueError(f"q_scale must be None, 'auto' or a finite number > 0, got {q_scale!r}") from error
