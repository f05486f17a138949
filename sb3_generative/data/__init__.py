"""Datasets made by the package itself: ``sb3-generative-data d4rl-style`` (also ``python -m sb3_generative.data``)."""

from sb3_generative.data.d4rl_style import ENVS, LEVELS, REFERENCE_SCORES, make_d4rl_style

__all__ = ["ENVS", "LEVELS", "REFERENCE_SCORES", "make_d4rl_style"]
