"""GMPO's policy: the shared generative actor policy, under SB3's usual alias names."""

from sb3_generative.common.policies import GenerativeActorPolicy

GenerativePolicy = GenerativeActorPolicy
MlpPolicy = GenerativeActorPolicy
#: SB3's names for Dict and image observations: the same policy, whose default features extractor follows the space
MultiInputPolicy = GenerativeActorPolicy
CnnPolicy = GenerativeActorPolicy

__all__ = ["CnnPolicy", "GenerativePolicy", "MlpPolicy", "MultiInputPolicy"]
