from sb3_generative.critics.iql import IQLCritic

__all__ = ["IQLCritic"]
