"""Generative models of actions (no RL inside): paths, networks, solvers, likelihood."""

from sb3_generative.generative.config import SolveConfig
from sb3_generative.generative.model import GENERATIVE_MODELS, GenerativeModel
from sb3_generative.generative.paths import GVPPath, ICFMPath, ProbabilityPath, VPSDEPath, make_path

__all__ = [
    "GENERATIVE_MODELS",
    "GVPPath",
    "GenerativeModel",
    "ICFMPath",
    "ProbabilityPath",
    "SolveConfig",
    "VPSDEPath",
    "make_path",
]
