"""GMPG policies: the generative actor plus the frozen behaviour model mu."""

from sb3_generative.policies import GMPGPolicy

GenerativePolicy = GMPGPolicy
MlpPolicy = GMPGPolicy

__all__ = ["GMPGPolicy", "GenerativePolicy", "MlpPolicy"]
