"""Evaluate a trained model the way the score table does, so that users report numbers the same way.

Per seed, ``n_eval_episodes`` episodes are played at once (one vectorised environment per episode, one batched
``predict`` per step, deterministic actions by default) on environments seeded ``10_000 + seed``; the returns are
D4RL-normalised with the dataset's reference returns when the model knows them.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_generative.common.checks import check_int

#: evaluation environments are seeded apart from training seeds
SEED_OFFSET = 10_000


@dataclass
class Evaluation:
    """Episode returns per seed and their D4RL-normalised scores.

    :param returns: (seeds, episodes) undiscounted returns
    :param scores: the same, normalised (0 random, 100 expert), or None when no reference returns are known
    """

    returns: np.ndarray
    scores: np.ndarray | None

    @property
    def mean_return(self) -> float:
        """The mean return over seeds and episodes."""
        return float(self.returns.mean())

    @property
    def mean_score(self) -> float | None:
        """The mean normalised score over seeds and episodes (None without reference returns)."""
        return None if self.scores is None else float(self.scores.mean())

    def per_seed(self) -> np.ndarray:
        """The mean score of each seed (returns when no reference returns are known)."""
        values = self.returns if self.scores is None else self.scores
        return values.mean(axis=1)


def evaluate(
    model: Any,
    env: str | Callable[[], gym.Env],
    n_eval_episodes: int = 10,
    seeds: Sequence[int] = (0,),
    deterministic: bool = True,
) -> Evaluation:
    """Play ``n_eval_episodes`` episodes per seed at once and score them.

    :param model: a trained model (anything with SB3's ``predict``; ``normalized_score`` when it has one)
    :param env: an environment id, or a function that makes one environment
    :param n_eval_episodes: episodes per seed, played in parallel
    :param seeds: evaluation seeds
    :param deterministic: deterministic actions (zero initial noise for the generative policies); False draws each
        action's initial noise from N(0, I), as the paper's evaluation does
    :return: returns and normalised scores, one row per seed
    """
    check_int("n_eval_episodes", n_eval_episodes)
    rows = []
    for seed in seeds:
        vec_env = make_vec_env(env, n_envs=n_eval_episodes, seed=SEED_OFFSET + int(seed))
        episode_returns, _ = evaluate_policy(
            model, vec_env, n_eval_episodes=n_eval_episodes, deterministic=deterministic, return_episode_rewards=True
        )
        vec_env.close()
        rows.append(np.asarray(episode_returns, dtype=np.float64))
    table = np.stack(rows)
    known = getattr(model, "ref_min_score", None) is not None and getattr(model, "ref_max_score", None) is not None
    return Evaluation(table, model.normalized_score(table) if known else None)
