"""sb3_generative: diffusion and flow-matching policies for offline RL with Stable-Baselines3 (GMPO, GMPG)."""

import os

from sb3_generative import _quiet  # noqa: F401 - first, before SB3 imports gym (see _quiet.py)

from sb3_generative.common.datasets import (
    DatasetError,
    OfflineData,
    UnsupportedSpaceError,
    load_offline_data,
    normalized_score,
)
from sb3_generative.critics.iql import IQLCritic
from sb3_generative.common.evaluation import Evaluation, evaluate
from sb3_generative.common.policies import GenerativeActorPolicy
from sb3_generative.generative.config import SolveConfig
from sb3_generative.gmpg import GMPG, GMPGPolicy
from sb3_generative.gmpo import GMPO, GenerativePolicy, MlpPolicy

with open(os.path.join(os.path.dirname(__file__), "version.txt")) as _file:
    __version__ = _file.read().strip()

__all__ = [
    "GMPG",
    "GMPO",
    "DatasetError",
    "Evaluation",
    "GMPGPolicy",
    "GenerativeActorPolicy",
    "GenerativePolicy",
    "IQLCritic",
    "MlpPolicy",
    "OfflineData",
    "SolveConfig",
    "UnsupportedSpaceError",
    "__version__",
    "evaluate",
    "load_offline_data",
    "normalized_score",
]
