"""The ``sb3-generative-data`` command.

sb3-generative-data d4rl-style --root ~/.minari/datasets                         # 3 tasks x medium/expert/medium-expert
sb3-generative-data d4rl-style --root /tmp/m --tasks hopper --levels medium --steps 20000
sb3-generative-data d4rl-style --root /tmp/m --tasks hopper --levels medium-replay --replay DIR
sb3-generative-data pointmaze --root ~/.minari/datasets --mazes umaze medium large    # needs sb3_generative[maze]
"""

import argparse
import os

from sb3_generative.data.d4rl_style import ENVS, LEVELS, make_d4rl_style


def _common(command: argparse.ArgumentParser) -> None:
    """The arguments every data command takes: where to write, and the seed."""
    command.add_argument("--root", required=True, help="Minari datasets folder; use it as MINARI_DATASETS_PATH")
    command.add_argument("--seed", type=int, default=0)


def parser() -> argparse.ArgumentParser:
    """The command's arguments."""
    root = argparse.ArgumentParser(
        prog="sb3-generative-data", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    commands = root.add_subparsers(dest="command", required=True)
    d4rl = commands.add_parser(
        "d4rl-style",
        help="D4RL-style MuJoCo locomotion datasets as local Minari datasets d4rl-style/<task>/<level>-v0",
        description="Roll out the packaged SAC behaviour policies by D4RL's protocol and write Minari datasets "
        "(about a minute per million steps per core).",
    )
    _common(d4rl)
    d4rl.add_argument("--tasks", nargs="+", default=list(ENVS), choices=list(ENVS))
    d4rl.add_argument("--levels", nargs="+", default=["medium", "expert", "medium-expert"], choices=list(LEVELS))
    d4rl.add_argument("--steps", type=int, default=1_000_000, help="transitions per behaviour policy (D4RL: 1,000,000)")
    d4rl.add_argument("--replay", help="folder of <task>-medium-replay.npz recordings (or one file), for medium-replay")
    d4rl.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="rollouts in parallel processes")
    maze = commands.add_parser(
        "pointmaze",
        help="D4RL-style PointMaze datasets as local Minari datasets d4rl-style/pointmaze/<maze>[-dense]-v0",
        description="A noisy PD controller following shortest paths in Gymnasium-Robotics' PointMaze, a new goal whenever "
        "one is reached, as Minari made its D4RL PointMaze datasets (pip install 'sb3_generative[maze]').",
    )
    _common(maze)
    maze.add_argument("--mazes", nargs="+", default=["umaze", "medium", "large"], choices=["umaze", "medium", "large"])
    maze.add_argument("--dense", action="store_true", help="dense rewards (the -dense datasets)")
    ties = "equally short routes at random per goal (the -ties datasets: both ways round the loops)"
    maze.add_argument("--random-ties", action="store_true", help=ties)
    maze.add_argument("--steps", type=int, default=1_000_000, help="transitions per maze (Minari's: 1,000,000)")
    maze.add_argument("--reference-episodes", type=int, default=100, help="episodes of each reference policy")
    return root


def main(argv: list[str] | None = None) -> None:
    """Run the command.

    :param argv: arguments (None: the command line)
    """
    args = parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything here is local
    levels = list(getattr(args, "levels", []))
    if getattr(args, "replay", None) and "medium-replay" not in levels:
        levels.append("medium-replay")
    try:
        if args.command == "pointmaze":
            from sb3_generative.data.pointmaze import make_pointmaze

            lines = make_pointmaze(
                args.root, args.mazes, args.steps, args.dense, args.seed, args.reference_episodes, args.random_ties
            )
        else:
            lines = make_d4rl_style(args.root, args.tasks, levels, args.steps, args.replay, args.seed, args.jobs)
    except ImportError as error:
        raise SystemExit(f"sb3-generative-data: {error}: pip install 'sb3_generative[maze]' for the mazes") from error
    except ValueError as error:
        raise SystemExit(f"sb3-generative-data: {error}") from error
    for line in lines:
        print(line, flush=True)
    print(f"export MINARI_DATASETS_PATH={os.environ['MINARI_DATASETS_PATH']}")
