"""The PointMaze data command on a few hundred steps: the planner, the controller, the dataset's checks, and GMPO and
GMPG trained on its Dict observations, evaluated on the single-goal maze."""

import numpy as np
import pytest

pytest.importorskip("gymnasium_robotics")

from sb3_generative import GMPG, GMPO, load_offline_data
from sb3_generative.data import pointmaze
from sb3_generative.data.cli import main
from tests.helpers import tiny


def test_the_planner_gives_shortest_paths() -> None:
    maze = pointmaze.EVAL_MAPS["umaze"]  # goal at (1, 1); the way round the wall is 6 moves from (3, 1)
    step = pointmaze.next_cells(maze, (1, 1))
    cell, moves = (3, 1), 0
    while cell != (1, 1):
        nxt = step[cell]
        assert abs(nxt[0] - cell[0]) + abs(nxt[1] - cell[1]) == 1 and maze[nxt[0]][nxt[1]] != 1
        cell, moves = nxt, moves + 1
    assert moves == 6 and len(step) == sum(c != 1 for row in maze for c in row)


def test_the_noise_free_controller_reaches_the_goal_and_stays() -> None:
    env = pointmaze.make_env("medium", evaluation=True)
    obs, _ = env.reset(seed=3)
    controller = pointmaze.WaypointController(env.unwrapped.maze, np.random.default_rng(0), jitter=0.0)
    rewards = []
    for _ in range(pointmaze.EVAL_STEPS["medium"]):
        obs, reward, *_ = env.step(np.clip(controller(obs), -1, 1).astype(np.float32))
        rewards.append(reward)
    assert sum(rewards) > 100 and rewards[-1] == 1.0  # at the goal, and still there at the end


@pytest.fixture(scope="module")
def maze_data(minari_root: str) -> str:
    main(["pointmaze", "--root", minari_root, "--mazes", "umaze", "--steps", "600", "--reference-episodes", "3"])
    return pointmaze.dataset_id("umaze")


def test_the_dataset_holds_goal_reaching_episodes(maze_data: str, capsys) -> None:  # type: ignore[no-untyped-def]
    data = load_offline_data(maze_data)
    assert len(data) == 600 and set(data.observation_space.spaces) == {"achieved_goal", "desired_goal", "observation"}
    assert data.truncations.sum() >= 3 and not data.terminations.any()  # one episode per goal, none terminal
    ends = data.episode_ends[:-1]  # each episode but the cut last one ends at its goal (sparse reward 1 there)
    assert np.all(data.rewards[ends] == 1.0)
    assert np.all(np.abs(data.actions) <= 1.0) and data.actions.std() > 0.3  # noisy, clipped
    low, high = data.ref_min_score, data.ref_max_score
    assert low is not None and high is not None and high > low
    assert data.env_spec.kwargs["reset_target"] is False  # the evaluation maze: one goal


@pytest.mark.parametrize("cls", [GMPO, GMPG])
def test_gmpo_and_gmpg_learn_on_the_maze_data(cls, maze_data: str) -> None:  # type: ignore[no-untyped-def]
    model = cls("MultiInputPolicy", None, dataset=maze_data, **tiny(cls)).learn(2)
    env = model.get_env()
    assert env.envs[0].spec.max_episode_steps == pointmaze.EVAL_STEPS["umaze"]
    obs = env.reset()
    action, _ = model.predict(obs, deterministic=True)
    assert action.shape == (1, 2) and np.isfinite(model.normalized_score(0.0))


def test_the_score_table_runs_every_column_on_a_maze(maze_data: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """scores.py on the maze (the CPU preset's maze entry: MultiInputPolicy, the goal reward unscaled): GMPO, GMPG,
    mu, BC, IQL and ReBRAC, evaluated on the single-goal maze, d3rlpy's columns on flattened Dict observations."""
    from tests.test_benchmarks import TINY_SETTINGS, load_scores, read_rows

    scores = load_scores()
    out = str(tmp_path / "maze")
    scores.main(["--preset", "cpu", "--datasets", "pointmaze-umaze", "--seeds", "0", "--out", out, *TINY_SETTINGS])
    rows = read_rows(f"{out}/scores.csv")
    assert {r["method"] for r in rows} == {"gmpo-gvp", "gmpg-gvp", "mu-gvp", "bc-d3rlpy", "iql-d3rlpy", "rebrac-d3rlpy"}
    assert all(r["finished"] == "True" and np.isfinite(float(r["score_mean"])) for r in rows)
    params = scores.hyperparameters("gmpo", "pointmaze-umaze", 1.0, {}, "cpu")
    assert params["policy"] == "MultiInputPolicy" and params["normalize_reward"] is False


def test_random_ties_take_both_equally_short_routes() -> None:
    """The medium maze has loops, so some cells have two equally short routes to a goal: with random ties the planner
    takes each in some draws (and every route stays a shortest one), without them always the same."""
    maze, goal = pointmaze.EVAL_MAPS["medium"], (4, 4)

    def moves(plan: dict, cell: tuple) -> int:  # type: ignore[type-arg]
        count = 0
        while cell != goal:
            cell, count = plan[cell], count + 1
        return count

    fixed = pointmaze.next_cells(maze, goal)
    assert all(pointmaze.next_cells(maze, goal) == fixed for _ in range(3))
    rng = np.random.default_rng(0)
    plans = [pointmaze.next_cells(maze, goal, rng) for _ in range(40)]
    tied = [cell for cell in fixed if len({plan[cell] for plan in plans}) > 1]
    assert tied, "no cell of the medium maze has two equally short routes to the goal"
    for plan in plans:
        assert all(moves(plan, cell) == moves(fixed, cell) for cell in fixed)


def test_the_zoo_trains_and_evaluates_on_the_maze(maze_data: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The Zoo entry point with the CPU preset's maze entry: Dict observations (MultiInputPolicy), evaluation on the
    registered single-goal maze, the best model saved."""
    pytest.importorskip("rl_zoo3")
    from sb3_generative.zoo import main as zoo

    logs = str(tmp_path / "logs")
    zoo(["train", "--algo", "gmpo", "--env", "D4RLStyle/pointmaze-umaze-v0", "--preset", "cpu", "-f", logs,
         "-n", "4", "--eval-freq", "2", "--eval-episodes", "1", "--seed", "0", "-params", "critic_steps:4",
         "bc_steps:4", "batch_size:16", "critic_batch_size:16", "bc_batch_size:16",
         "policy_kwargs:dict(net_arch=[16])"])  # fmt: skip
    run = tmp_path / "logs" / "gmpo" / "D4RLStyle-pointmaze-umaze-v0_1"
    assert (run / "best_model.zip").exists() and (run / "evaluations.npz").exists()
    model = GMPO.load(run / "best_model.zip")
    assert set(model.observation_space.spaces) == {"achieved_goal", "desired_goal", "observation"}
