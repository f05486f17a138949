"""The SB3 policy shared by GMPO and GMPG: a generative actor (diffusion / flow), the IQL critic, their optimizers."""

from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, CombinedExtractor, FlattenExtractor, NatureCNN
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule

from sb3_generative.common.checks import check_int
from sb3_generative.common.compile import check_compile_option, compiled
from sb3_generative.common.observations import ObservationEncoder, ObservationLayout
from sb3_generative.common.optim import optimizer_kwargs
from sb3_generative.critics.iql import IQLCritic
from sb3_generative.generative.config import SolveConfig
from sb3_generative.generative.model import GenerativeModel
from sb3_generative.generative.paths import make_path

DEFAULT_NET_ARCH = [512, 256, 128]
DEFAULT_CRITIC_NET_ARCH = [256, 256]


class GenerativeActorPolicy(BasePolicy):
    """Policy whose actor is a conditional generative model of actions, plus an IQL critic.

    Actions live in SB3's scaled space [-1, 1] (``squash_output=True``): ``predict`` unscales them to the action
    space's bounds. ``deterministic=True`` integrates the ODE from the zero noise, so the same observation always
    gives the same action; ``deterministic=False`` draws the initial noise from N(0, I), as the paper does.
    Observation statistics (used when the algorithm normalises observations) are registered buffers, so a loaded
    policy predicts without its dataset.

    Box action spaces of any shape are flattened inside the policy (the networks see ``prod(shape)`` numbers);
    SB3's ``predict`` restores the shape.

    Observations of any space SB3's off-policy algorithms take (a Box of any shape, images, a Dict of them) are stored
    as flat rows (:mod:`sb3_generative.common.observations`); the actor's and the critic's features extractors see
    them in their space's structure, as in SB3. The default extractor follows the space, as SB3's aliases choose
    it: ``CombinedExtractor`` for a Dict (``"MultiInputPolicy"``), ``NatureCNN`` for an image (``"CnnPolicy"``),
    ``FlattenExtractor`` otherwise (``"MlpPolicy"``).

    :param observation_space: observation space (Box of any shape, image Box, or Dict of Boxes)
    :param action_space: Box action space (any shape)
    :param lr_schedule: learning-rate schedule of the actor
    :param generative_model: "gvp", "vpsde" or "icfm"
    :param parameterization: VP-SDE only: "noise" or "velocity" (None: the model's default)
    :param net_arch: widths of the actor's U-shaped residual network (paper: [512, 256, 128]; at least one width),
        or SAC's ``dict(pi=[...], qf=[...])`` to set the actor's and the critic's widths together
    :param time_embed_dim: Gaussian-Fourier time features
    :param cond_embed_dim: state embedding size
    :param emb_dim: merged time-and-condition embedding size
    :param n_sampling_steps: solver steps when acting (reference: 31 Euler steps)
    :param solver: "euler", "midpoint", "rk4" or a torchdiffeq adaptive method
    :param critic_net_arch: hidden widths of the Q and V networks
    :param critic_layer_norm: layer normalisation in the critic's hidden layers (ReBRAC's ingredient)
    :param n_critics: size of the Q ensemble
    :param critic_learning_rate: learning rate of the critic's optimizer (Q and V together, as in d3rlpy)
    :param bc_learning_rate: learning rate of the actor's behaviour cloning (its own optimizer, ``bc_optimizer``)
    :param optimizer_class: optimizer of the actor and of the critic
    :param optimizer_kwargs: extra optimizer arguments (Adam and AdamW run fused unless ``fused`` or ``foreach`` is
        given here)
    :param features_extractor_class: SB3 features extractor of the observations (None: chosen by the space)
    :param features_extractor_kwargs: its keyword arguments
    :param share_features_extractor: the critic uses the actor's extractor (SB3's meaning: the critic's loss does
        not train it; the actor's does); False (default, as in SAC): each has its own
    :param normalize_images: divide image observations by 255 (SB3's ``normalize_images``)
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
        net_arch: list[int] | dict[str, list[int]] | None = None,
        time_embed_dim: int = 32,
        cond_embed_dim: int = 32,
        emb_dim: int = 128,
        n_sampling_steps: int = 31,
        solver: str = "euler",
        critic_net_arch: list[int] | None = None,
        n_critics: int = 2,
        critic_layer_norm: bool = False,
        critic_learning_rate: float = 3e-4,
        bc_learning_rate: float = 1e-4,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        features_extractor_class: type[BaseFeaturesExtractor] | None = None,
        features_extractor_kwargs: dict[str, Any] | None = None,
        share_features_extractor: bool = False,
        normalize_images: bool = True,
    ) -> None:
        super().__init__(
            observation_space,
            action_space,
            features_extractor_class=features_extractor_class or default_features_extractor(observation_space),
            features_extractor_kwargs=features_extractor_kwargs,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
            squash_output=True,
            normalize_images=normalize_images,
        )
        self.share_features_extractor = share_features_extractor
        self.layout = ObservationLayout(observation_space)
        self.generative_model = generative_model
        self.parameterization = parameterization
        self.net_arch, self.critic_net_arch = split_net_arch(net_arch, critic_net_arch)
        self.time_embed_dim, self.cond_embed_dim, self.emb_dim = time_embed_dim, cond_embed_dim, emb_dim
        self.n_sampling_steps, self.solver = n_sampling_steps, solver
        self.n_critics, self.critic_learning_rate = n_critics, critic_learning_rate
        if not isinstance(critic_layer_norm, bool):
            raise ValueError(f"critic_layer_norm must be True or False, got {critic_layer_norm!r}")
        self.critic_layer_norm = critic_layer_norm
        self.bc_learning_rate = bc_learning_rate
        self.obs_dim = self.layout.flat_dim  # numbers in a stored (flat) observation
        self.action_dim = int(np.prod(action_space.shape))  # type: ignore[arg-type]
        self.register_buffer("obs_mean", th.zeros(self.obs_dim))
        self.register_buffer("obs_std", th.ones(self.obs_dim))
        self._build(lr_schedule)

    def make_encoder(self) -> ObservationEncoder:
        """A new features extractor of the observations (its own parameters), behind the flat rows' unflattening."""
        try:
            extractor = self.features_extractor_class(self.observation_space, **self.features_extractor_kwargs)
        except RuntimeError as error:  # NatureCNN runs a sample through its convolutions when it is built
            raise ValueError(
                f"The features extractor {self.features_extractor_class.__name__} cannot take observations of shape "
                f"{self.observation_space.shape} ({error}); NatureCNN needs images of at least 36 x 36 pixels: pass "
                "policy_kwargs=dict(features_extractor_class=FlattenExtractor) or your own BaseFeaturesExtractor"
            ) from error
        return ObservationEncoder(self.observation_space, extractor, self.normalize_images)

    def make_generative_model(self, parameterization: str | None = None) -> GenerativeModel:
        """A generative model with this policy's architecture and its own features extractor (the actor, or GMPG's
        reference model)."""
        encoder = self.make_encoder()
        return GenerativeModel(
            encoder.features_dim,
            self.action_dim,
            self.generative_model,
            parameterization=parameterization or self.parameterization,
            **self._actor_architecture(),
            encoder=None if encoder.identity else encoder,
        )

    def _actor_architecture(self) -> dict[str, Any]:
        """The generative network's sizes and sampler: what the actor, mu and a saved policy are built from."""
        return dict(
            net_arch=self.net_arch,
            time_embed_dim=self.time_embed_dim,
            cond_embed_dim=self.cond_embed_dim,
            emb_dim=self.emb_dim,
            n_sampling_steps=self.n_sampling_steps,
            solver=self.solver,
        )

    def _build(self, lr_schedule: Schedule) -> None:
        self.actor = self.make_generative_model()
        encoder = self.actor.encoder if self.share_features_extractor else self.make_encoder()
        assert encoder is None or isinstance(encoder, ObservationEncoder)
        features_dim = self.obs_dim if encoder is None else encoder.features_dim
        critic_encoder = None if encoder is None or encoder.identity else encoder
        self.critic = IQLCritic(
            features_dim,
            self.action_dim,
            self.critic_net_arch,
            self.n_critics,
            encoder=critic_encoder,
            train_encoder=not self.share_features_extractor,
            layer_norm=self.critic_layer_norm,
        )
        self.optimizer = self.make_optimizer(self.actor.parameters(), lr_schedule(1))
        # one optimizer for Q and V on q_loss + v_loss, as d3rlpy's IQL (SAC also hangs it on its critic)
        self.critic.optimizer = self.make_optimizer(self.critic.trainable_parameters(), self.critic_learning_rate)
        # behaviour cloning has its own optimizer, so that the policy phase starts with fresh moments
        self.bc_optimizer: th.optim.Optimizer = self.make_optimizer(self.actor.parameters(), self.bc_learning_rate)

    def make_optimizer(self, params: Any, learning_rate: float) -> th.optim.Optimizer:
        """An optimizer of ``optimizer_class`` with ``optimizer_kwargs`` (Adam and AdamW fused unless told otherwise).

        :param params: parameters to optimise
        :param learning_rate: initial learning rate
        """
        kwargs = optimizer_kwargs(self.optimizer_class, self.optimizer_kwargs)
        return self.optimizer_class(params, lr=learning_rate, **kwargs)  # type: ignore[call-arg]

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            dict(
                lr_schedule=self._dummy_schedule,
                generative_model=self.generative_model,
                parameterization=self.parameterization,
                **self._actor_architecture(),
                critic_net_arch=self.critic_net_arch,
                n_critics=self.n_critics,
                critic_layer_norm=self.critic_layer_norm,
                critic_learning_rate=self.critic_learning_rate,
                bc_learning_rate=self.bc_learning_rate,
                optimizer_class=self.optimizer_class,
                optimizer_kwargs=self.optimizer_kwargs,
                features_extractor_class=self.features_extractor_class,
                features_extractor_kwargs=self.features_extractor_kwargs,
                share_features_extractor=self.share_features_extractor,
                normalize_images=self.normalize_images,
            )
        )
        return data

    def set_observation_stats(self, mean: th.Tensor, std: th.Tensor) -> None:
        """Set the observation normalisation ``(obs - mean) / std`` used by actor and critic (per flat position, so
        per key of a Dict; images are left to SB3's scaling by 1/255: mean 0 and std 1 there)."""
        images = th.as_tensor(self.layout.image_mask, device=self.obs_mean.device)
        self.obs_mean.copy_(th.where(images, 0.0, mean.to(self.obs_mean)))
        self.obs_std.copy_(th.where(images, 1.0, std.to(self.obs_std)))

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
        observation = self.layout.flatten_tensor(observation)  # the stored rows' layout, whatever the space
        noise = self.initial_noise(observation.shape[0], deterministic)
        return getattr(self, "_sampler", self._sample)(observation, noise)

    def _sample(self, observation: th.Tensor, noise: th.Tensor) -> th.Tensor:
        """Normalise, solve from ``noise``, clamp to [-1, 1]: the region ``torch_compile`` compiles per batch size."""
        return self.actor.sample(self.normalize_obs(observation), noise=noise).clamp(-1.0, 1.0)

    def set_torch_compile(self, mode: bool | str) -> None:
        """Compile the sampler behind ``predict`` (one graph per batch size) or go back to eager; not saved.

        :param mode: False, True or a torch.compile mode
        """
        self._sampler = compiled(self._sample, check_compile_option(mode))


def default_features_extractor(observation_space: spaces.Space) -> type[BaseFeaturesExtractor]:
    """The features extractor SB3's policy alias for a space would use: ``CombinedExtractor`` for a Dict
    (``MultiInputPolicy``), ``NatureCNN`` for an image (``CnnPolicy``), ``FlattenExtractor`` otherwise (``MlpPolicy``).

    :param observation_space: the observation space
    """
    if isinstance(observation_space, spaces.Dict):
        return CombinedExtractor
    if is_image_space(observation_space):
        return NatureCNN
    return FlattenExtractor


def check_policy_kwargs(policy_kwargs: dict[str, Any] | None) -> None:
    """Validate the generative policy's settings in ``policy_kwargs`` (those given), before any data is read.

    :param policy_kwargs: the algorithm's ``policy_kwargs``
    """
    kwargs = dict(policy_kwargs or {})
    split_net_arch(kwargs.get("net_arch"), kwargs.get("critic_net_arch"))
    check_int("n_sampling_steps", kwargs.get("n_sampling_steps", 31))
    SolveConfig(kwargs.get("n_sampling_steps", 31), kwargs.get("solver", "euler"))
    make_path(kwargs.get("generative_model", "gvp"), kwargs.get("parameterization"))
    for name in ("time_embed_dim", "cond_embed_dim", "emb_dim", "n_critics"):
        if name in kwargs:
            check_int(name, kwargs[name])
    if not isinstance(kwargs.get("critic_layer_norm", False), bool):
        raise ValueError(f"critic_layer_norm must be True or False, got {kwargs['critic_layer_norm']!r}")
    if kwargs.get("time_embed_dim", 2) % 2:
        raise ValueError(f"time_embed_dim must be even (sine and cosine features), got {kwargs['time_embed_dim']}")


def split_net_arch(
    net_arch: list[int] | dict[str, list[int]] | None, critic_net_arch: list[int] | None
) -> tuple[list[int], list[int]]:
    """The actor's and the critic's hidden widths from ``net_arch`` (a list, or SAC's ``dict(pi=..., qf=...)``).

    :param net_arch: the actor's widths, or a dict with keys ``pi`` and/or ``qf``
    :param critic_net_arch: the critic's widths (None: the default, or ``net_arch["qf"]``)
    :return: (actor widths, critic widths)
    """
    if isinstance(net_arch, dict):
        unknown = set(net_arch) - {"pi", "qf"}
        if unknown:
            raise ValueError(f"net_arch as a dict takes the keys 'pi' and 'qf' (as in SAC), got {sorted(unknown)}")
        if "qf" in net_arch and critic_net_arch is not None:
            raise ValueError("Give the critic's widths either as net_arch['qf'] or as critic_net_arch, not both")
        critic_net_arch = net_arch.get("qf", critic_net_arch)
        net_arch = net_arch.get("pi")
    actor = _widths("net_arch", net_arch, DEFAULT_NET_ARCH)
    return actor, _widths("critic_net_arch", critic_net_arch, DEFAULT_CRITIC_NET_ARCH)


def _widths(name: str, widths: Any, default: list[int]) -> list[int]:
    if widths is None:
        return list(default)
    if not isinstance(widths, (list, tuple)) or not all(isinstance(w, int) and not isinstance(w, bool) for w in widths):
        raise ValueError(f"{name} must be a list of integer layer widths, got {widths!r}")
    if len(widths) == 0 or min(widths) < 1:
        raise ValueError(
            f"{name} needs at least one positive width (the generative network is a U of residual blocks, the critic "
            f"an MLP; both need a hidden layer), got {list(widths)!r}"
        )
    return list(widths)
