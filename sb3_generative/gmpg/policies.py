"""GMPG's policy: the generative actor, the frozen behaviour model mu, the critic, and their optimizers."""

from typing import Any

import torch as th
from gymnasium import spaces
from stable_baselines3.common.type_aliases import Schedule

from sb3_generative.common.policies import GenerativeActorPolicy


class GMPGPolicy(GenerativeActorPolicy):
    """:class:`GenerativeActorPolicy` plus GMPG's frozen behaviour model ``mu`` (the KL reference) and the optimizer
    of its behaviour cloning.

    The VP-SDE actor defaults to the velocity parameterisation here, as GMPG's behaviour cloning uses flow matching for
    all three models (GenerativeRL ``grl/algorithms/gmpg.py``).

    :param observation_space: flat Box observation space
    :param action_space: Box action space
    :param lr_schedule: learning-rate schedule of the policy-gradient steps
    :param bc_learning_rate: learning rate of behaviour cloning
    :param kwargs: the arguments of :class:`GenerativeActorPolicy`
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        bc_learning_rate: float = 1e-4,
        **kwargs: Any,
    ) -> None:
        self.bc_learning_rate = bc_learning_rate
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def _build(self, lr_schedule: Schedule) -> None:
        if self.generative_model.lower().replace("-", "").replace("_", "") == "vpsde" and self.parameterization is None:
            self.parameterization = "velocity"
        super()._build(lr_schedule)
        self.reference = self.make_generative_model()
        self.reference.requires_grad_(False)
        # behaviour cloning trains the actor, which is then copied into the reference (mu)
        self.bc_optimizer: th.optim.Optimizer = self.make_optimizer(self.actor.parameters(), self.bc_learning_rate)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data["bc_learning_rate"] = self.bc_learning_rate
        return data


GenerativePolicy = GMPGPolicy
MlpPolicy = GMPGPolicy

__all__ = ["GMPGPolicy", "GenerativePolicy", "MlpPolicy"]
