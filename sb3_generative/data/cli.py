"""The ``sb3-generative-data`` command.

sb3-generative-data d4rl-style --root ~/.minari/datasets                         # 3 tasks x medium/expert/medium-expert
sb3-generative-data d4rl-style --root /tmp/m --tasks hopper --levels medium --steps 20000
sb3-generative-data d4rl-style --root /tmp/m --tasks hopper --levels medium-replay --replay DIR
"""

import argparse
import os

from sb3_generative.data.d4rl_style import ENVS, LEVELS, make_d4rl_style


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
    d4rl.add_argument("--root", required=True, help="Minari datasets folder; use it as MINARI_DATASETS_PATH")
    d4rl.add_argument("--tasks", nargs="+", default=list(ENVS), choices=list(ENVS))
    d4rl.add_argument("--levels", nargs="+", default=["medium", "expert", "medium-expert"], choices=list(LEVELS))
    d4rl.add_argument("--steps", type=int, default=1_000_000, help="transitions per behaviour policy (D4RL: 1,000,000)")
    d4rl.add_argument("--replay", help="folder of <task>-medium-replay.npz recordings (or one file), for medium-replay")
    d4rl.add_argument("--seed", type=int, default=0)
    d4rl.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="rollouts in parallel processes")
    return root


def main(argv: list[str] | None = None) -> None:
    """Run the command.

    :param argv: arguments (None: the command line)
    """
    args = parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything here is local
    levels = list(args.levels)
    if args.replay and "medium-replay" not in levels:
        levels.append("medium-replay")
    try:
        lines = make_d4rl_style(args.root, args.tasks, levels, args.steps, args.replay, args.seed, args.jobs)
    except ValueError as error:
        raise SystemExit(f"sb3-generative-data: {error}") from error
    for line in lines:
        print(line, flush=True)
    print(f"export MINARI_DATASETS_PATH={os.environ['MINARI_DATASETS_PATH']}")
