"""SB3 policies holding a generative actor (diffusion / flow) and the IQL critic."""

from typing import Any

import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule

from sb3_generative.common.datasets import check_supported_spaces
from sb3_generative.common.optim import optimizer_kwargs
from sb3_generative.critics.iql import IQLCritic
from sb3_generative.generative.model import GenerativeModel


class GenerativeActorPolicy(BasePolicy):
    """Policy whose actor is a conditional generative model of actions, plus an IQL critic.

    Actions live in SB3's scaled space [-1, 1] (``squash_output=True``): ``predict`` unscales them to the action
    space's bounds. ``deterministic=True`` integrates the ODE from the zero noise, so the same observation always
    gives the same action; ``deterministic=False`` draws the initial noise from N(0, I), as the paper does.
    Observation statistics (used when the algorithm normalises observations) are registered buffers, so a loaded
    policy predicts without its dataset.

    :param observation_space: flat Box observation space
    :param action_space: Box action space
    :param lr_schedule: learning-rate schedule of the actor
    :param generative_model: "gvp", "vpsde" or "icfm"
    :param parameterization: VP-SDE only: "noise" or "velocity" (None: the model's default)
    :param net_arch: widths of the actor's U-shaped residual network (paper: [512, 256, 128])
    :param time_embed_dim: Gaussian-Fourier time features
    :param cond_embed_dim: state embedding size
    :param emb_dim: merged time-and-condition embedding size
    :param n_sampling_steps: solver steps when acting (reference: 31 Euler steps)
    :param solver: "euler", "midpoint", "rk4" or a torchdiffeq adaptive method
    :param critic_net_arch: hidden widths of the Q and V networks
    :param n_critics: size of the Q ensemble
    :param optimizer_class: actor optimizer
    :param optimizer_kwargs: extra actor optimizer arguments (Adam and AdamW run fused unless ``fused`` or
        ``foreach`` is given here)
    """

    obs_mean: th.Tensor
    obs_std: th.Tensor

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        generative_model: str = "gvp",
        parameterization: str | None = None,
        net_arch: list[int] | None = None,
        time_embed_dim: int = 32,
        cond_embed_dim: int = 32,
        emb_dim: int = 128,
        n_sampling_steps: int = 31,
        solver: str = "euler",
        critic_net_arch: list[int] | None = None,
        n_critics: int = 2,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
    ) -> None:
        check_supported_spaces(observation_space, action_space)
        super().__init__(
            observation_space,
            action_space,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
            squash_output=True,
        )
        self.generative_model = generative_model
        self.parameterization = parameterization
        self.net_arch = list(net_arch) if net_arch is not None else [512, 256, 128]
        self.time_embed_dim, self.cond_embed_dim, self.emb_dim = time_embed_dim, cond_embed_dim, emb_dim
        self.n_sampling_steps, self.solver = n_sampling_steps, solver
        self.critic_net_arch = list(critic_net_arch) if critic_net_arch is not None else [256, 256]
        self.n_critics = n_critics
        self.obs_dim = int(observation_space.shape[0])  # type: ignore[index]
        self.action_dim = int(action_space.shape[0])  # type: ignore[index]
        self.register_buffer("obs_mean", th.zeros(self.obs_dim))
        self.register_buffer("obs_std", th.ones(self.obs_dim))
        self._build(lr_schedule)

    def make_generative_model(self, parameterization: str | None = None) -> GenerativeModel:
        """A generative model with this policy's architecture (the actor, or GMPG's reference model)."""
        return GenerativeModel(
            self.obs_dim,
            self.action_dim,
            self.generative_model,
            parameterization=parameterization or self.parameterization,
            net_arch=self.net_arch,
            time_embed_dim=self.time_embed_dim,
            cond_embed_dim=self.cond_embed_dim,
            emb_dim=self.emb_dim,
            n_sampling_steps=self.n_sampling_steps,
            solver=self.solver,
        )

    def _build(self, lr_schedule: Schedule) -> None:
        self.actor = self.make_generative_model()
        self.critic = IQLCritic(self.obs_dim, self.action_dim, self.critic_net_arch, self.n_critics)
        kwargs = optimizer_kwargs(self.optimizer_class, self.optimizer_kwargs)  # fused Adam unless told otherwise
        self.optimizer = self.optimizer_class(self.actor.parameters(), lr=lr_schedule(1), **kwargs)  # type: ignore[call-arg]

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.pop("normalize_images", None)  # flat vector observations only
        data.update(
            dict(
                lr_schedule=self._dummy_schedule,
                generative_model=self.generative_model,
                parameterization=self.parameterization,
                net_arch=self.net_arch,
                time_embed_dim=self.time_embed_dim,
                cond_embed_dim=self.cond_embed_dim,
                emb_dim=self.emb_dim,
                n_sampling_steps=self.n_sampling_steps,
                solver=self.solver,
                critic_net_arch=self.critic_net_arch,
                n_critics=self.n_critics,
                optimizer_class=self.optimizer_class,
                optimizer_kwargs=self.optimizer_kwargs,
            )
        )
        return data

    def set_observation_stats(self, mean: th.Tensor, std: th.Tensor) -> None:
        """Set the observation normalisation ``(obs - mean) / std`` used by actor and critic."""
        self.obs_mean.copy_(mean.to(self.obs_mean))
        self.obs_std.copy_(std.to(self.obs_std))

    def normalize_obs(self, obs: th.Tensor) -> th.Tensor:
        """Observations as the networks see them."""
        return (obs.float() - self.obs_mean) / self.obs_std

    def initial_noise(self, batch_size: int, deterministic: bool) -> th.Tensor:
        """Zero noise when deterministic (reproducible actions), else N(0, I)."""
        shape = (batch_size, self.action_dim)
        if deterministic:
            return th.zeros(shape, device=self.obs_mean.device)
        return th.randn(shape, device=self.obs_mean.device)

    def forward(self, obs: th.Tensor, deterministic: bool = False) -> th.Tensor:
        return self._predict(obs, deterministic)

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        assert isinstance(observation, th.Tensor)
        obs = self.normalize_obs(observation)
        actions = self.actor.sample(obs, noise=self.initial_noise(obs.shape[0], deterministic))
        return actions.clamp(-1.0, 1.0)


class GMPGPolicy(GenerativeActorPolicy):
    """:class:`GenerativeActorPolicy` plus GMPG's frozen behaviour model ``mu`` (the KL reference).

    The VP-SDE actor defaults to the velocity parameterisation here, as GMPG's behaviour cloning uses flow
    matching for all three models (reference 2.1).
    """

    def _build(self, lr_schedule: Schedule) -> None:
        if self.generative_model.lower().replace("-", "").replace("_", "") == "vpsde" and self.parameterization is None:
            self.parameterization = "velocity"
        super()._build(lr_schedule)
        self.reference = self.make_generative_model()
        self.reference.requires_grad_(False)


MlpPolicy = GenerativeActorPolicy
GenerativePolicy = GenerativeActorPolicy
