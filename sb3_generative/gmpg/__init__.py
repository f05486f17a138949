from sb3_generative.gmpg.gmpg import GMPG
from sb3_generative.gmpg.policies import GenerativePolicy, GMPGPolicy, MlpPolicy

__all__ = ["GMPG", "GMPGPolicy", "GenerativePolicy", "MlpPolicy"]
