"""D4RL-style MuJoCo locomotion datasets, made locally as Minari datasets with no network.

D4RL's protocol (Fu et al. 2020, arXiv 2004.07219): roll out a SAC behaviour policy with *sampled* actions
``tanh(mu + exp(clip(log_std, -20, 2)) eps)``, 1000-step episodes, true falls as terminations and the 1000-step
limit as truncations, until N transitions; medium-expert = the medium and expert episodes together; medium-replay =
every transition a SAC agent saw while learning up to the medium level (a recording, given with ``--replay``).
Environments are Gymnasium ``*-v4`` (the model, observations, rewards and terminations of D4RL's v2 tasks). Each
dataset stores D4RL's reference returns as ``ref_min_score`` / ``ref_max_score``, so normalised scores are on
D4RL's scale. The six behaviour policies ship with the package (``behaviour_policies/``, origins in its
``sources.json``). Ids: ``d4rl-style/<task>/<level>-v0``.

These are D4RL-style, not D4RL: the behaviour policies and the simulator versions differ, so the data's own scores
do too (hopper-medium 42.0 here, about 44 in D4RL v2). Compare with published numbers with care, and with other
methods only on the same files. The draw is reproducible on one kind of machine, not across CPUs: the last bits of
the policy's matrix products depend on the BLAS kernel the CPU selects, and the dynamics amplify them (hopper-medium:
2,378 or 2,381 episodes, averages 42.07 and 42.0, on two machines).
"""

import contextlib
import os
import pathlib
import warnings
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

POLICIES = pathlib.Path(__file__).resolve().parent / "behaviour_policies"
ENVS = {"halfcheetah": "HalfCheetah-v4", "hopper": "Hopper-v4", "walker2d": "Walker2d-v4"}
#: D4RL's reference returns (random, expert) per task
REFERENCE_SCORES = {"halfcheetah": (-280.178953, 12135.0), "hopper": (-20.272305, 3234.3), "walker2d": (1.629008, 4592.3)}
LEVELS = ("medium", "expert", "medium-expert", "medium-replay")
EPISODE_STEPS = 1000


class TanhGaussianPolicy:
    """A SAC actor (two 256-unit ReLU layers, a mean and a log-std head) acting with sampled, squashed actions.

    :param path: an ``.npz`` of its weights (``fc0``, ``fc1``, ``mu``, ``log_std``; ``/weight`` and ``/bias``)
    """

    def __init__(self, path: pathlib.Path) -> None:
        with np.load(path, allow_pickle=False) as weights:
            self.weights = {key: weights[key] for key in weights.files}

    def __call__(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A sampled action ``tanh(mu + exp(clip(log_std, -20, 2)) eps)`` for one observation."""
        w = self.weights
        hidden = np.maximum(obs @ w["fc0/weight"].T + w["fc0/bias"], 0.0)
        hidden = np.maximum(hidden @ w["fc1/weight"].T + w["fc1/bias"], 0.0)
        mu = hidden @ w["mu/weight"].T + w["mu/bias"]
        log_std = np.clip(hidden @ w["log_std/weight"].T + w["log_std/bias"], -20.0, 2.0)
        return np.tanh(mu + np.exp(log_std) * rng.standard_normal(mu.shape)).astype(np.float32)


@dataclass
class Rollouts:
    """Episodes of one behaviour policy (Minari ``EpisodeBuffer`` objects) and their returns."""

    episodes: list[Any]
    returns: list[float]


@contextlib.contextmanager
def v4_notices_hidden() -> Iterator[None]:
    """Hide the two notices making a v4 task prints, which a user of the data command cannot act on: the datasets are
    defined on Gymnasium's v4 tasks on purpose (D4RL's protocol and reference returns were set on the v2 tasks the
    v4 ones reproduce; Minari's own D4RL successors use v5), so Gymnasium's "out of date, consider v5"
    ``DeprecationWarning`` is about a choice made here; and MuJoCo 4's compiler notice that the v4 models' XML uses
    the deprecated ``settotalmass`` attribute is printed by MuJoCo's C code (it reaches Python only through
    ``mujoco.set_mju_user_warning``) about files Gymnasium ships. Any other MuJoCo warning still goes out as a Python
    warning, and every other warning passes as it is."""
    import mujoco

    previous = mujoco.get_mju_user_warning()

    def handler(message: str) -> None:
        if "settotalmass" not in message:
            warnings.warn(f"MuJoCo: {message}", RuntimeWarning, stacklevel=2)

    mujoco.set_mju_user_warning(handler)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*The environment \w+-v4 is out of date", category=DeprecationWarning)
            yield
    finally:
        mujoco.set_mju_user_warning(previous)


def make_env(task: str, **kwargs: Any) -> Any:
    """The task's Gymnasium v4 environment, without the notices of :func:`v4_notices_hidden`.

    :param task: "halfcheetah", "hopper" or "walker2d"
    :param kwargs: ``gym.make`` arguments
    """
    import gymnasium as gym

    with v4_notices_hidden():
        return gym.make(ENVS[task], **kwargs)


def rollouts(task: str, level: str, steps: int, seed: int) -> Rollouts:
    """Roll out the task's ``level`` behaviour policy for ``steps`` transitions.

    Falls are terminations, the 1000-step limit a truncation; the last episode is cut at ``steps`` transitions and
    the cut is a truncation (D4RL cuts its last episode with neither flag set).

    :param task: "halfcheetah", "hopper" or "walker2d"
    :param level: "medium" or "expert"
    :param steps: transitions to record
    :param seed: seed of the actions' noise and of the episodes' resets
    """
    env = make_env(task, max_episode_steps=EPISODE_STEPS)
    policy = TanhGaussianPolicy(POLICIES / f"{task}-{level}.npz")
    rng = np.random.default_rng(seed)
    result, total = Rollouts([], []), 0
    while total < steps:
        episode = _episode(env, policy, rng, len(result.episodes), seed * 100_000 + len(result.episodes), steps - total)
        total += len(episode.rewards)
        result.episodes.append(episode)
        result.returns.append(float(sum(episode.rewards)))
    env.close()
    return result


def _episode(env: Any, policy: TanhGaussianPolicy, rng: np.random.Generator, index: int, seed: int, budget: int) -> Any:
    from minari.data_collector import EpisodeBuffer

    obs, _ = env.reset(seed=seed)
    observations, actions, rewards, terminations, truncations = [obs], [], [], [], []
    while True:
        action = policy(obs.astype(np.float32), rng)
        obs, reward, terminated, truncated, _ = env.step(action)
        observations.append(obs)
        actions.append(action)
        rewards.append(float(reward))
        terminations.append(bool(terminated))
        truncations.append(bool(truncated) or (len(rewards) >= budget and not terminated))  # the final cut
        if terminations[-1] or truncations[-1]:
            break
    return EpisodeBuffer(
        id=index,
        seed=seed,
        observations=np.asarray(observations, np.float32),
        actions=np.asarray(actions, np.float32),
        rewards=rewards,
        terminations=terminations,
        truncations=truncations,
    )


def _rollouts(job: tuple[str, str, int, int]) -> Rollouts:
    return rollouts(*job)


def replay_episodes(path: str | os.PathLike) -> Rollouts:
    """Episodes of a recorded SAC replay (a D4RL-format ``.npz``: ``observations``, ``actions``, ``rewards``,
    ``next_observations``, ``terminals``, ``timeouts``), read as data.

    :param path: the recording
    """
    from minari.data_collector import EpisodeBuffer

    with np.load(path, allow_pickle=False) as archive:  # read each array once: an NpzFile re-reads on indexing
        d = {key: archive[key] for key in archive.files}
    ends = np.flatnonzero(d["terminals"].astype(bool) | d["timeouts"].astype(bool))
    starts, stops = np.concatenate([[0], ends + 1]), np.concatenate([ends + 1, [len(d["rewards"])]])
    result = Rollouts([], [])
    for start, stop in zip(starts, stops):
        if stop <= start:
            continue
        terminations = d["terminals"][start:stop].astype(bool).tolist()
        truncations = d["timeouts"][start:stop].astype(bool).tolist()
        truncations[-1] = truncations[-1] or not terminations[-1]  # a cut without a flag ends there all the same
        observations = np.concatenate([d["observations"][start:stop], d["next_observations"][stop - 1 : stop]])
        rewards = d["rewards"][start:stop].astype(float).tolist()
        result.episodes.append(
            EpisodeBuffer(
                id=len(result.episodes),
                observations=observations.astype(np.float32),
                actions=d["actions"][start:stop].astype(np.float32),
                rewards=rewards,
                terminations=terminations,
                truncations=truncations,
            )
        )
        result.returns.append(float(sum(rewards)))
    return result


def write_dataset(task: str, level: str, data: Rollouts, note: str) -> str:
    """Write one Minari dataset ``d4rl-style/<task>/<level>-v0`` (replacing an older one) and say what it holds.

    :param task: the task
    :param level: the level
    :param data: its episodes
    :param note: how it was made, for the dataset's description
    :return: a one-line summary
    """
    import minari

    dataset_id = f"d4rl-style/{task}/{level}-v0"
    if dataset_id in minari.list_local_datasets():
        minari.delete_dataset(dataset_id)
    low, high = REFERENCE_SCORES[task]
    spec = make_env(task).spec
    with (
        v4_notices_hidden(),
        warnings.catch_warnings(),
    ):  # Minari makes the env again; it asks for an author, an e-mail and a code link a local dataset lacks
        warnings.filterwarnings("ignore", message=r"`(author|author_email|code_permalink)` is set to None")
        minari.create_dataset_from_buffers(
            dataset_id=dataset_id,
            buffer=[replace(episode, id=i) for i, episode in enumerate(data.episodes)],
            env=spec,
            eval_env=spec,  # the same task: said, so that Minari does not warn that it was left unset
            algorithm_name="SAC",
            ref_min_score=low,
            ref_max_score=high,
            description=f"D4RL-style {task} {level}: {note}. Normalise with D4RL's reference returns.",
        )
    steps = sum(len(episode.rewards) for episode in data.episodes)
    score = 100 * (np.mean(data.returns) - low) / (high - low)
    return (
        f"{dataset_id}: {len(data.episodes)} episodes, {steps} steps, mean return {np.mean(data.returns):.0f} "
        f"(normalised {score:.1f})"
    )


def make_d4rl_style(
    root: str | os.PathLike,
    tasks: list[str] | tuple[str, ...] = tuple(ENVS),
    levels: list[str] | tuple[str, ...] = ("medium", "expert", "medium-expert"),
    steps: int = 1_000_000,
    replay: str | os.PathLike | None = None,
    seed: int = 0,
    jobs: int = 1,
) -> list[str]:
    """Write D4RL-style datasets under ``root`` (use it as ``MINARI_DATASETS_PATH``).

    :param root: Minari datasets folder
    :param tasks: among "halfcheetah", "hopper", "walker2d"
    :param levels: among "medium", "expert", "medium-expert", "medium-replay"
    :param steps: transitions per behaviour-policy dataset (D4RL: 1,000,000)
    :param replay: for "medium-replay": a folder of ``<task>-medium-replay.npz`` recordings, or one such file
    :param seed: seed of the rollouts (the expert rollouts use ``seed + 1``)
    :param jobs: rollouts in parallel processes
    :return: one summary line per dataset written
    """
    _check_request(tasks, levels, steps, replay)
    os.environ["MINARI_DATASETS_PATH"] = str(pathlib.Path(root).expanduser().resolve())
    needed = [
        (task, level, steps, seed + (0 if level == "medium" else 1))
        for task in tasks
        for level in ("medium", "expert")
        if level in levels or "medium-expert" in levels
    ]
    with ProcessPoolExecutor(max_workers=max(1, min(jobs, len(needed) or 1))) as pool:  # Minari writes stay here
        made = dict(zip([(task, level) for task, level, _, _ in needed], pool.map(_rollouts, needed)))
    lines = []
    for task in tasks:
        for level in ("medium", "expert"):
            if level in levels:
                lines.append(write_dataset(task, level, made[task, level], f"{steps} steps of the {level} SAC policy"))
        if "medium-expert" in levels:
            both = Rollouts(
                made[task, "medium"].episodes + made[task, "expert"].episodes,
                made[task, "medium"].returns + made[task, "expert"].returns,
            )
            lines.append(write_dataset(task, "medium-expert", both, "medium and expert episodes"))
        recording = _replay_file(replay, task) if "medium-replay" in levels else None
        if recording is not None:
            lines.append(write_dataset(task, "medium-replay", replay_episodes(recording), "SAC replay up to medium level"))
    return lines


def _check_request(tasks: Any, levels: Any, steps: int, replay: Any) -> None:
    unknown = [task for task in tasks if task not in ENVS] + [level for level in levels if level not in LEVELS]
    if unknown:
        raise ValueError(f"Unknown task or level {unknown}: tasks {list(ENVS)}, levels {list(LEVELS)}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive number of transitions, got {steps!r}")
    if "medium-replay" in levels and replay is None:
        raise ValueError("medium-replay datasets come from a recorded SAC replay: pass replay= (--replay DIR)")


def _replay_file(replay: str | os.PathLike | None, task: str) -> pathlib.Path | None:
    if replay is None:
        return None
    path = pathlib.Path(replay)
    if path.is_dir():
        path = path / f"{task}-medium-replay.npz"
    if not path.is_file():
        print(f"No medium-replay recording for {task} at {path}: skipped")
        return None
    return path
