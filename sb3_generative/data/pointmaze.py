"""D4RL-style PointMaze datasets, made locally as Minari made its D4RL PointMaze (maze2d) datasets.

The protocol, from D4RL's maze2d and the Minari authors' description of their PointMaze datasets: the point mass of
Gymnasium-Robotics' ``PointMaze_{UMaze,Medium,Large}-v3`` (``...Dense-v3`` for dense rewards) runs as a continuing task
that draws a new goal whenever it reaches one; a shortest-path planner on the maze grid gives the next cell toward the
goal, and a PD controller steers to it (``10 (waypoint - position) - velocity``), each intermediate waypoint jittered
by up to 0.2 in x and y, Gaussian noise of standard deviation 0.5 added to every action, then clipped to the box. An
episode ends (truncated) when its goal is reached, so the data holds many goal-reaching paths; the last is cut at the
step budget. ``ref_min_score`` is a uniform random policy's mean return and ``ref_max_score`` the noise-free
controller's, each over 100 episodes of the evaluation maze: one fixed goal cell, random start cells, the task
continuing after the goal is reached (the return counts the steps spent at the goal).

The planner and controller are written here (breadth-first search on the grid instead of Q-iteration: both give a
shortest path on a grid of unit moves).

    sb3-generative-data pointmaze --root ~/.minari/datasets --mazes umaze medium large --steps 1000000

Needs ``pip install "sb3_generative[maze]"`` (gymnasium-robotics).
"""

import collections
import contextlib
import io
from dataclasses import dataclass
from typing import Any

import numpy as np

#: the maze name, as in the dataset id, and its Gymnasium-Robotics env id (sparse reward)
MAZES = {"umaze": "PointMaze_UMaze-v3", "medium": "PointMaze_Medium-v3", "large": "PointMaze_Large-v3"}
#: the step limit of an evaluation episode (Gymnasium-Robotics' own limits for these mazes)
EVAL_STEPS = {"umaze": 300, "medium": 600, "large": 800}
G = "g"
#: the evaluation mazes: one goal cell (g), every other free cell a possible start (the Minari authors' maps)
EVAL_MAPS: dict[str, list[list[Any]]] = {
    "umaze": [[1, 1, 1, 1, 1], [1, G, 0, 0, 1], [1, 1, 1, 0, 1], [1, 0, 0, 0, 1], [1, 1, 1, 1, 1]],
    "medium": [
        [1, 1, 1, 1, 1, 1, 1, 1],
        [1, 0, 0, 1, 1, 0, 0, 1],
        [1, 0, 0, 1, 0, 0, 0, 1],
        [1, 1, 0, 0, 0, 1, 1, 1],
        [1, 0, 0, 1, 0, 0, 0, 1],
        [1, 0, 1, 0, 0, 1, 0, 1],
        [1, 0, 0, 0, 1, 0, G, 1],
        [1, 1, 1, 1, 1, 1, 1, 1],
    ],
    "large": [
        [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
        [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1],
        [1, 0, 1, 1, 0, 1, 0, 1, 0, 1, 0, 1],
        [1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1],
        [1, 0, 1, 1, 1, 1, 0, 1, 1, 1, 0, 1],
        [1, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 1],
        [1, 1, 0, 1, 0, 1, 0, 1, 0, 1, 1, 1],
        [1, 0, 0, 1, 0, 0, 0, 1, 0, G, 0, 1],
        [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
    ],
}
ACTION_NOISE = 0.5
WAYPOINT_JITTER = 0.2
GAINS = (10.0, -1.0)  # proportional on the position error, derivative on the velocity


def env_id(maze: str, dense: bool = False) -> str:
    """The Gymnasium-Robotics id of a maze (``...Dense-v3`` with dense rewards)."""
    return MAZES[maze].replace("-v3", "Dense-v3") if dense else MAZES[maze]


def dataset_id(maze: str, dense: bool = False, random_ties: bool = False) -> str:
    """``d4rl-style/pointmaze/<maze>[-dense][-ties]-v0``."""
    return f"d4rl-style/pointmaze/{maze}{'-dense' if dense else ''}{'-ties' if random_ties else ''}-v0"


def register_maze_envs() -> None:
    """Register Gymnasium-Robotics' environments, without the notice its import prints about the Adroit hand tasks
    (unrelated to the mazes)."""
    import gymnasium as gym

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        import gymnasium_robotics
    gym.register_envs(gymnasium_robotics)


def make_env(maze: str, dense: bool = False, evaluation: bool = False, **kwargs: Any) -> Any:
    """A PointMaze env: the data's continuing task with new goals, or the single-goal evaluation maze.

    :param maze: "umaze", "medium" or "large"
    :param dense: dense rewards
    :param evaluation: the evaluation maze (one goal, the task continuing at the goal, the maze's step limit)
    :param kwargs: more ``gym.make`` arguments
    """
    import gymnasium as gym

    register_maze_envs()
    if evaluation:
        return gym.make(env_id(maze, dense), maze_map=EVAL_MAPS[maze], continuing_task=True, reset_target=False,
                        max_episode_steps=EVAL_STEPS[maze], **kwargs)  # fmt: skip
    return gym.make(env_id(maze, dense), continuing_task=True, reset_target=True, max_episode_steps=10**9, **kwargs)


def make_eval_env(maze: str, dense: bool = False) -> Any:
    """The evaluation maze without its time limit, as a Gymnasium entry point (``D4RLStyle/pointmaze-<maze>-v0``
    adds the limit, ``EVAL_STEPS``).

    :param maze: "umaze", "medium" or "large"
    :param dense: dense rewards
    """
    return make_env(maze, dense, evaluation=True).unwrapped


MOVES = ((1, 0), (-1, 0), (0, 1), (0, -1))


def next_cells(
    maze_map: list[list[Any]], goal: tuple[int, int], rng: np.random.Generator | None = None
) -> dict[tuple[int, int], tuple[int, int]]:
    """For every free cell, the next cell of a shortest path to ``goal`` (breadth-first distances from the goal over
    the four unit moves; the goal maps to itself).

    :param maze_map: rows of 1 (wall) and anything else (free)
    :param goal: (row, column) of the goal cell
    :param rng: None: where two neighbours are equally close to the goal, the first in ``MOVES`` order (one fixed
        route, as the Minari authors' Q-iteration planner takes its argmax); a generator: one of them at random, so
        that data recorded over many goals goes both ways round a loop of the maze
    """
    distance = {goal: 0}
    queue = collections.deque([goal])
    while queue:
        row, col = queue.popleft()
        for d_row, d_col in MOVES:
            cell = (row + d_row, col + d_col)
            inside = 0 <= cell[0] < len(maze_map) and 0 <= cell[1] < len(maze_map[0])
            if inside and maze_map[cell[0]][cell[1]] != 1 and cell not in distance:
                distance[cell] = distance[(row, col)] + 1
                queue.append(cell)
    step = {goal: goal}
    for (row, col), d in distance.items():
        if d:
            closer = [(row + dr, col + dc) for dr, dc in MOVES if distance.get((row + dr, col + dc)) == d - 1]
            step[(row, col)] = closer[int(rng.integers(len(closer)))] if rng is not None and len(closer) > 1 else closer[0]
    return step


class WaypointController:
    """A PD controller to the next cell of a shortest path to the goal, replanning when the goal changes.

    :param maze: the env's ``maze`` (cell and position conversions, ``maze_map``)
    :param rng: random generator of the waypoint jitter
    :param jitter: the largest waypoint offset in x and y (0: the cell centres)
    :param threshold: how close to a waypoint counts as there
    :param random_ties: break ties between equally short routes at random, once per goal (``next_cells``)
    """

    def __init__(
        self,
        maze: Any,
        rng: np.random.Generator,
        jitter: float = WAYPOINT_JITTER,
        threshold: float = 0.1,
        random_ties: bool = False,
    ) -> None:
        self.maze, self.rng, self.jitter, self.threshold = maze, rng, jitter, threshold
        self.random_ties = random_ties
        self.goal_xy: np.ndarray | None = None
        self.plan: dict[tuple[int, int], tuple[int, int]] = {}
        self.target_cell: tuple[int, int] = (0, 0)
        self.target_xy = np.zeros(2)

    def _cell(self, xy: np.ndarray) -> tuple[int, int]:
        row, col = self.maze.cell_xy_to_rowcol(xy)
        return int(row), int(col)

    def _aim(self, cell: tuple[int, int], goal_cell: tuple[int, int]) -> None:
        self.target_cell = cell
        if cell == goal_cell:
            assert self.goal_xy is not None
            self.target_xy = np.asarray(self.goal_xy, dtype=np.float64)
        else:
            centre = self.maze.cell_rowcol_to_xy(np.array(cell))
            self.target_xy = centre - self.rng.uniform(size=2) * self.jitter

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """The controller's action (before noise) for an observation of the maze."""
        position, goal = obs["achieved_goal"], obs["desired_goal"]
        goal_cell = self._cell(goal)
        if self.goal_xy is None or np.linalg.norm(self.goal_xy - goal) > 1e-3:  # a new goal: plan again
            self.goal_xy = np.array(goal, dtype=np.float64)
            self.plan = next_cells(self.maze.maze_map, goal_cell, self.rng if self.random_ties else None)
            here = self._cell(position)
            self._aim(self.plan.get(here, goal_cell), goal_cell)
        if self.target_cell != goal_cell and np.linalg.norm(self.target_xy - position) <= self.threshold:
            self._aim(self.plan.get(self.target_cell, goal_cell), goal_cell)
        return GAINS[0] * (self.target_xy - position) + GAINS[1] * obs["observation"][2:]


@dataclass
class MazeData:
    """The episodes of one recording and what Minari's authors checked of theirs."""

    episodes: list[Any]
    successes: int
    goal_cells: int
    free_cells: int


def record(maze: str, steps: int, seed: int, dense: bool = False, random_ties: bool = False) -> MazeData:
    """Roll the noisy controller out for ``steps`` transitions, one episode per goal reached.

    :param maze: "umaze", "medium" or "large"
    :param steps: transitions to record
    :param seed: seed of the env, the action noise and the waypoint jitter
    :param dense: dense rewards
    :param random_ties: equally short routes chosen at random per goal (data that goes both ways round a loop)
    """
    env = make_env(maze, dense)
    rng = np.random.default_rng(seed)
    controller = WaypointController(env.unwrapped.maze, rng, random_ties=random_ties)
    obs, _ = env.reset(seed=seed)
    episodes: list[Any] = []
    goals: set[tuple[int, int]] = set()
    successes = 0
    columns: dict[str, list[Any]] = _columns(obs)
    for step in range(steps):
        action = np.clip(controller(obs) + rng.normal(0.0, ACTION_NOISE, 2), -1.0, 1.0).astype(np.float32)
        goals.add(controller._cell(obs["desired_goal"]))
        obs, reward, terminated, _, info = env.step(action)
        success = bool(info.get("success", False))
        for key, value in (("actions", action), ("rewards", float(reward)), ("terminations", bool(terminated))):
            columns[key].append(value)
        columns["truncations"].append(success or step == steps - 1)  # a goal reached, or the end of the recording
        columns["observations"].append(obs)
        if success or step == steps - 1:
            successes += success
            episodes.append(_episode(len(episodes), columns))
            columns = _columns(obs)  # the task continues: the next episode starts where this one ended
    env.close()
    free = sum(cell != 1 for row in env.unwrapped.maze.maze_map for cell in row)
    return MazeData(episodes, successes, len(goals), free)


def _columns(first_obs: dict[str, np.ndarray]) -> dict[str, list[Any]]:
    return {"observations": [first_obs], "actions": [], "rewards": [], "terminations": [], "truncations": []}


def _episode(index: int, columns: dict[str, list[Any]]) -> Any:
    from minari.data_collector import EpisodeBuffer

    keys = columns["observations"][0].keys()
    observations = {key: np.asarray([o[key] for o in columns["observations"]], np.float32) for key in keys}
    return EpisodeBuffer(id=index, observations=observations, actions=np.asarray(columns["actions"], np.float32),
                         rewards=columns["rewards"], terminations=columns["terminations"],
                         truncations=columns["truncations"])  # fmt: skip


def reference_returns(maze: str, dense: bool = False, episodes: int = 100, seed: int = 0) -> tuple[float, float]:
    """``(ref_min_score, ref_max_score)``: the mean returns of a uniform random policy and of the noise-free controller
    on the evaluation maze, over ``episodes`` episodes each.

    :param maze: "umaze", "medium" or "large"
    :param dense: dense rewards
    :param episodes: episodes per policy
    :param seed: seed of the first episode (the others follow)
    """
    env = make_env(maze, dense, evaluation=True)
    rng = np.random.default_rng(seed)
    means = []
    for expert in (False, True):
        returns = []
        for k in range(episodes):
            obs, _ = env.reset(seed=seed + k)
            controller = WaypointController(env.unwrapped.maze, rng, jitter=0.0)
            total, done = 0.0, False
            while not done:
                action = np.clip(controller(obs), -1, 1) if expert else rng.uniform(-1, 1, 2)
                obs, reward, terminated, truncated, _ = env.step(action.astype(np.float32))
                total, done = total + float(reward), terminated or truncated
            returns.append(total)
        means.append(float(np.mean(returns)))
    env.close()
    return means[0], means[1]


def write_dataset(
    maze: str, data: MazeData, dense: bool, references: tuple[float, float], steps: int, random_ties: bool = False
) -> str:
    """Write ``d4rl-style/pointmaze/<maze>[-dense][-ties]-v0`` (replacing an older one) and say what it holds.

    :return: a one-line summary with the checks: episodes, success share, episode lengths, goal coverage
    """
    import minari

    name = dataset_id(maze, dense, random_ties)
    if name in minari.list_local_datasets():
        minari.delete_dataset(name)
    spec, eval_spec = make_env(maze, dense).spec, make_env(maze, dense, evaluation=True).spec
    minari.create_dataset_from_buffers(
        dataset_id=name,
        buffer=data.episodes,
        env=spec,
        eval_env=eval_spec,
        algorithm_name="noisy waypoint controller",
        author="sb3_generative",
        author_email="n/a",
        code_permalink="n/a",
        ref_min_score=references[0],
        ref_max_score=references[1],
        description=f"D4RL-style PointMaze {maze}{' dense' if dense else ''}: {steps} steps of a noisy PD controller "
        "following shortest paths on the grid, a new goal whenever one is reached, one episode per goal"
        + (", equally short routes chosen at random." if random_ties else "."),
    )
    lengths = [len(episode.actions) for episode in data.episodes]
    return (
        f"{name}: {len(data.episodes)} episodes, {steps} steps, {data.successes / len(data.episodes):.1%} end at their "
        f"goal, episode length median {int(np.median(lengths))} (max {max(lengths)}), goals in {data.goal_cells} of "
        f"{data.free_cells} free cells; reference returns {references[0]:.1f} (random) to {references[1]:.1f} (controller)"
    )


def make_pointmaze(root: str, mazes: list[str], steps: int, dense: bool = False, seed: int = 0,
                   reference_episodes: int = 100, random_ties: bool = False) -> list[str]:  # fmt: skip
    """Write the PointMaze datasets into ``root`` (also set as ``MINARI_DATASETS_PATH``).

    :param root: Minari datasets folder
    :param mazes: any of "umaze", "medium", "large"
    :param steps: transitions per maze (Minari's datasets: 1,000,000)
    :param dense: dense rewards (the ``-dense`` ids)
    :param seed: seed of the recording
    :param reference_episodes: episodes of each reference policy
    :param random_ties: break ties between equally short routes at random (the ``-ties`` datasets: the data goes both
        ways round the maze's loops, a multimodal behaviour)
    :return: a summary line per dataset
    """
    import os

    unknown = [maze for maze in mazes if maze not in MAZES]
    if unknown:
        raise ValueError(f"Unknown maze(s) {unknown}: choose from {list(MAZES)}")
    if steps < 1:
        raise ValueError(f"--steps must be at least 1, got {steps}")
    os.makedirs(root, exist_ok=True)
    os.environ["MINARI_DATASETS_PATH"] = os.path.abspath(root)
    lines = []
    for maze in mazes:
        data = record(maze, steps, seed, dense, random_ties)
        references = reference_returns(maze, dense, reference_episodes, seed)
        lines.append(write_dataset(maze, data, dense, references, steps, random_ties))
    return lines
