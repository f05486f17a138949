"""GMPO policies: the generative actor policy under SB3's usual alias names."""

from sb3_generative.policies import GenerativeActorPolicy

GenerativePolicy = GenerativeActorPolicy
MlpPolicy = GenerativeActorPolicy

__all__ = ["GenerativePolicy", "MlpPolicy"]
