"""GMPG's policy: the generative actor, the frozen behaviour model mu, the critic, and their optimizers."""

from typing import Any

from gymnasium import spaces
from stable_baselines3.common.type_aliases import Schedule

from sb3_generative.common.policies import GenerativeActorPolicy


class GMPGPolicy(GenerativeActorPolicy):
    """:class:`GenerativeActorPolicy` plus GMPG's frozen behaviour model ``mu`` (the KL reference).

    The VP-SDE actor defaults to the velocity parameterisation here, as GMPG's behaviour cloning uses flow matching for
    all three models (GenerativeRL ``grl/algorithms/gmpg.py``).

    :param observation_space: flat Box observation space
    :param action_space: Box action space
    :param lr_schedule: learning-rate schedule of the policy-gradient steps
    :param kwargs: the arguments of :class:`GenerativeActorPolicy` (``bc_learning_rate``: mu's behaviour cloning)
    """

    def __init__(
        self, observation_space: spaces.Space, action_space: spaces.Space, lr_schedule: Schedule, **kwargs: Any
    ) -> None:
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def _build(self, lr_schedule: Schedule) -> None:
        if self.generative_model.lower().replace("-", "").replace("_", "") == "vpsde" and self.parameterization is None:
            self.parameterization = "velocity"
        super()._build(lr_schedule)
        self.reference = self.make_generative_model()
        self.reference.requires_grad_(False)  # behaviour cloning trains the actor, which is then copied into mu


GenerativePolicy = GMPGPolicy
MlpPolicy = GMPGPolicy
#: SB3's names for Dict and image observations: the same policy, whose default features extractor follows the space
MultiInputPolicy = GMPGPolicy
CnnPolicy = GMPGPolicy

__all__ = ["CnnPolicy", "GMPGPolicy", "GenerativePolicy", "MlpPolicy", "MultiInputPolicy"]
