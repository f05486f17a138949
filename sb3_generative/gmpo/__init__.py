from sb3_generative.gmpo.gmpo import GMPO
from sb3_generative.gmpo.policies import GenerativePolicy, MlpPolicy

__all__ = ["GMPO", "GenerativePolicy", "MlpPolicy"]
