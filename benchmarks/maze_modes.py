"""What a generative policy keeps that a Gaussian one loses: actions at a junction of the medium maze where the data goes
both ways, and the paths of a few evaluation episodes.

The data is ``d4rl-style/pointmaze/medium-ties-v0`` (``sb3-generative-data pointmaze --mazes medium --random-ties``):
where two routes to a goal are equally short the controller takes either, so at such a junction, for the same goal,
the data's actions point two ways. The script finds the junction cell and the pair of directions with the most data,
trains GMPO (``MultiInputPolicy``) and d3rlpy's Gaussian BC (``policy_type="stochastic"``) on the dataset, samples
both at the data's own (state, goal) pairs there (GMPO with N(0, I) initial noise, the paper's sampler), and reports
the share of each sample set in each of the two directions (the nearer one in angle) beside the data's. It draws
``maze_modes.png`` (the three sets of actions) and ``maze_paths.png`` (GMPO's evaluation episodes on the maze).

    sb3-generative-data pointmaze --root DIR --mazes medium --random-ties --steps 300000
    MINARI_DATASETS_PATH=DIR python benchmarks/maze_modes.py --out benchmarks/results/maze_modes
"""

import argparse
import json
import os
from typing import Any

import numpy as np

DATASET = "d4rl-style/pointmaze/medium-ties-v0"


def junction(data: Any, maze: Any, radius: float) -> tuple[tuple[int, int], list[tuple[int, int]], np.ndarray]:
    """The free cell, the two neighbouring cells the data heads for and the indices of its samples there: among the
    data's steps within ``radius`` of a cell centre whose goal has two equally short routes from that cell, the cell
    and pair of next cells with the most steps.

    :param data: the dataset (:class:`OfflineData`, observations in the layout's key order)
    :param maze: the env's maze (cell conversions, ``maze_map``)
    :param radius: how close to the cell centre a step must be
    """
    from sb3_generative.common.observations import ObservationLayout
    from sb3_generative.data.pointmaze import MOVES

    layout = ObservationLayout(data.observation_space)
    parts = dict(zip(layout.keys, np.split(data.observations, np.cumsum(layout.sizes)[:-1], axis=1)))
    position, goal = parts["achieved_goal"], parts["desired_goal"]
    free = [(r, c) for r, row in enumerate(maze.maze_map) for c, v in enumerate(row) if v != 1]
    best: tuple[int, Any, Any, Any] = (0, None, None, None)
    goal_cells = np.array([maze.cell_xy_to_rowcol(g) for g in goal])
    for cell in free:
        centre = maze.cell_rowcol_to_xy(np.array(cell))
        near = np.linalg.norm(position - centre, axis=1) < radius
        for goal_cell in {tuple(g) for g in goal_cells[near]}:
            distance = _distances(maze.maze_map, goal_cell)
            neighbours = [(cell[0] + dr, cell[1] + dc) for dr, dc in MOVES]
            closer = [n for n in neighbours if distance.get(n) == distance[cell] - 1]
            if len(closer) != 2:
                continue
            index = np.flatnonzero(near & np.all(goal_cells == goal_cell, axis=1))
            if len(index) > best[0]:
                best = (len(index), cell, closer, index)
    if best[1] is None:
        raise SystemExit("no junction with two equally short routes in the data: make it with --random-ties")
    return best[1], best[2], best[3]


def _distances(maze_map: list[list[Any]], goal: tuple[int, int]) -> dict[tuple[int, int], int]:
    from sb3_generative.data.pointmaze import next_cells

    plan, distance = next_cells(maze_map, goal), {}
    for cell in plan:
        steps, here = 0, cell
        while here != goal:
            here, steps = plan[here], steps + 1
        distance[cell] = steps
    return distance


#: an action counts for a direction within this angle of it (degrees); others, and actions shorter than
#: ``MIN_FORCE``, count as "neither": the average of the two ways, the failure of a unimodal policy
MAX_ANGLE = 30.0
MIN_FORCE = 0.2


def mode_shares(actions: np.ndarray, directions: np.ndarray) -> list[float]:
    """The shares of actions within ``MAX_ANGLE`` of each direction, then of the rest ("neither")."""
    norm = np.linalg.norm(actions, axis=1)
    cosine = (actions @ directions.T) / (norm[:, None] + 1e-8)
    near = (cosine >= np.cos(np.radians(MAX_ANGLE))) & (norm[:, None] >= MIN_FORCE)
    shares = [float(np.mean(near[:, k])) for k in range(len(directions))]
    return [*shares, float(np.mean(~near.any(axis=1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--critic-steps", type=int, default=20_000)
    parser.add_argument("--bc-steps", type=int, default=20_000)
    parser.add_argument("--steps", type=int, default=2_000, help="GMPO policy steps")
    parser.add_argument("--samples", type=int, default=10, help="samples per (state, goal) pair of the data")
    parser.add_argument("--radius", type=float, default=0.3)
    parser.add_argument("--episodes", type=int, default=6, help="evaluation episodes drawn on the maze")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/out/maze_modes")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    import sb3_generative  # noqa: F401  (first: it imports Gym, which d3rlpy imports, without its banner)

    import d3rlpy
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch as th

    from sb3_generative import GMPO, load_offline_data
    from sb3_generative.data.pointmaze import make_env

    data = load_offline_data(DATASET)
    maze = make_env("medium").unwrapped.maze
    cell, heads, index = junction(data, maze, args.radius)
    centre = maze.cell_rowcol_to_xy(np.array(cell))
    directions = np.array([maze.cell_rowcol_to_xy(np.array(h)) - centre for h in heads])
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)

    model = GMPO("MultiInputPolicy", None, dataset=DATASET, batch_size=256, critic_steps=args.critic_steps,
                 bc_steps=args.bc_steps, bc_learning_rate=1e-3, expectile=0.9, normalize_reward=False,
                 normalize_observations=True, beta=3.0, policy_kwargs=dict(net_arch=[256, 256]), torch_threads=1,
                 seed=args.seed, device="cpu")  # fmt: skip
    model.learn(args.steps)
    observations = np.repeat(data.observations[index], args.samples, axis=0)
    with th.no_grad():
        obs = model.policy.normalize_obs(th.as_tensor(observations))
        noise = th.randn(len(obs), model.actor.action_dim, generator=th.Generator().manual_seed(args.seed))
        generative = model.actor.sample(obs, noise).clamp(-1, 1).numpy()

    from scores import mdp_dataset  # this folder's score harness: our transitions as d3rlpy's MDPDataset

    d3rlpy.seed(args.seed)
    gaussian = d3rlpy.algos.BCConfig(policy_type="stochastic", batch_size=256).create(device="cpu:0")
    gaussian.fit(mdp_dataset(data), n_steps=args.bc_steps, n_steps_per_epoch=args.bc_steps, show_progress=False,
                 logger_adapter=d3rlpy.logging.NoopAdapterFactory())  # fmt: skip
    gaussian_actions = np.asarray(gaussian.sample_action(observations))
    data_actions = data.actions[index]

    sets = {"data": data_actions, "GMPO (N(0, I) noise)": generative, "Gaussian BC (d3rlpy)": gaussian_actions}
    shares = {name: mode_shares(actions, directions) for name, actions in sets.items()}
    figure, axes = plt.subplots(1, 3, figsize=(12, 4), sharex=True, sharey=True)
    for axis, (name, actions) in zip(axes, sets.items()):
        axis.scatter(actions[:, 0], actions[:, 1], s=4, alpha=0.4)
        for k, direction in enumerate(directions):
            axis.arrow(0, 0, 0.8 * direction[0], 0.8 * direction[1], color="C3", width=0.01)
            axis.annotate(f"{shares[name][k]:.0%}", 0.95 * direction, color="C3")
        axis.annotate(f"neither: {shares[name][-1]:.0%}", (-1.0, -1.0), color="0.3")
        axis.set(title=name, xlim=(-1.1, 1.1), ylim=(-1.1, 1.1), xlabel="action x", ylabel="action y")
        axis.set_aspect("equal")
    figure.suptitle(f"medium maze, cell {cell}: {len(index)} data steps whose goal has two equally short routes")
    figure.tight_layout()
    figure.savefig(os.path.join(args.out, "maze_modes.png"), dpi=100)
    plt.close(figure)

    paths, returns = draw_paths(model, maze, args, plt)
    result = {"dataset": DATASET, "cell": list(cell), "towards": [list(h) for h in heads], "data_steps": len(index),
              "samples_per_step": args.samples, "shares": shares, "evaluation_returns": returns,
              "settings": vars(args)}  # fmt: skip
    with open(os.path.join(args.out, "maze_modes.json"), "w") as file:
        json.dump(result, file, indent=1)
    print(json.dumps({k: result[k] for k in ("cell", "towards", "data_steps", "shares", "evaluation_returns")}))
    print(f"figures: {os.path.join(args.out, 'maze_modes.png')}, {paths}")


def draw_paths(model: Any, maze: Any, args: argparse.Namespace, plt: Any) -> tuple[str, list[float]]:
    """GMPO's deterministic evaluation episodes on the single-goal medium maze, drawn over its walls."""
    from sb3_generative.data.pointmaze import make_env

    env = make_env("medium", evaluation=True)
    figure, axis = plt.subplots(figsize=(5, 5))
    for r, row in enumerate(maze.maze_map):
        for c, value in enumerate(row):
            if value == 1:
                x, y = maze.cell_rowcol_to_xy(np.array([r, c]))
                axis.add_patch(plt.Rectangle((x - 0.5, y - 0.5), 1, 1, color="0.3"))
    returns = []
    for k in range(args.episodes):
        obs, _ = env.reset(seed=1000 + k)
        path, total, done = [obs["achieved_goal"].copy()], 0.0, False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(action)
            path.append(obs["achieved_goal"].copy())
            total, done = total + float(reward), terminated or truncated
        returns.append(total)
        xy = np.array(path)
        axis.plot(xy[:, 0], xy[:, 1], lw=1)
        axis.plot(*xy[0], "o", ms=3, color="k")
    goal = obs["desired_goal"]
    axis.plot(goal[0], goal[1], "*", ms=14, color="C3")
    axis.set_aspect("equal")
    axis.set(title=f"GMPO, {args.episodes} evaluation episodes (goal: star)")
    axis.autoscale()
    path = os.path.join(args.out, "maze_paths.png")
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path, returns


if __name__ == "__main__":
    main()
