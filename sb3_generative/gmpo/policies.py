"""GMPO's policy: the shared generative actor policy, under SB3's usual alias names."""

from sb3_generative.common.policies import GenerativeActorPolicy

GenerativePolicy = GenerativeActorPolicy
MlpPolicy = GenerativeActorPolicy

__all__ = ["GenerativePolicy", "MlpPolicy"]
