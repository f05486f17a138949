"""RL Zoo entry point: ``python -m sb3_generative.zoo {train,enjoy,optimize} --algo gmpo --env Hopper-v4 ...``.

RL Zoo validates ``--algo`` against its ``ALGOS`` dict before importing any plug-in module, so
``python -m rl_zoo3.train --algo gmpo`` cannot work (argparse rejects the
unknown choice before any ``--gym-packages`` module is imported). This wrapper registers GMPO and GMPG in
``rl_zoo3.ALGOS`` (the dict every Zoo module shares) and their Optuna samplers in ``HYPERPARAMS_SAMPLER``, then
runs the Zoo's own ``train`` / ``enjoy``. Without ``-conf``, our packaged YAML for the algorithm is used. All Zoo
options work; ``n_timesteps``, ``--eval-freq``, ``--save-freq`` and ``-n`` count gradient steps.

    sb3-generative-zoo train --algo gmpo --env Hopper-v4 --eval-freq 10000 --eval-episodes 10
    sb3-generative-zoo enjoy --algo gmpo --env Hopper-v4 -f logs --load-best
    sb3-generative-zoo optimize --algo gmpo --env Hopper-v4 --n-trials 20 --storage sqlite:///gmpo.db
"""

import os
import sys
from typing import Any

from sb3_generative.gmpg import GMPG
from sb3_generative.gmpo import GMPO

ALGORITHMS = {"gmpo": GMPO, "gmpg": GMPG}
CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "zoo_configs")
COMMANDS = ("train", "enjoy", "optimize")


def sample_gmpo_params(trial: Any, n_actions: int, n_envs: int, additional_args: dict) -> dict[str, Any]:
    """Optuna sampler for GMPO's policy phase (the critic is best shared through ``critic:`` in the YAML).

    :param trial: Optuna trial
    :param n_actions: action dimension (unused)
    :param n_envs: number of envs (unused)
    :param additional_args: RL Zoo's extra arguments (unused)
    :return: constructor arguments
    """
    return {
        "beta": trial.suggest_float("beta", 0.3, 20.0, log=True),
        "weight_clamp": trial.suggest_categorical("weight_clamp", [100.0, 400.0, 1000.0]),
        "learning_rate": trial.suggest_float("learning_rate", 3e-5, 1e-3, log=True),
    }


def sample_gmpg_params(trial: Any, n_actions: int, n_envs: int, additional_args: dict) -> dict[str, Any]:
    """Optuna sampler for GMPG's policy-gradient phase.

    :param trial: Optuna trial
    :param n_actions: action dimension (unused)
    :param n_envs: number of envs (unused)
    :param additional_args: RL Zoo's extra arguments (unused)
    :return: constructor arguments
    """
    return {
        "beta": trial.suggest_float("beta", 0.3, 30.0, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 1e-6, 3e-4, log=True),
    }


D4RL_STYLE_TASKS = {
    "halfcheetah": "gymnasium.envs.mujoco.half_cheetah_v4:HalfCheetahEnv",
    "hopper": "gymnasium.envs.mujoco.hopper_v4:HopperEnv",
    "walker2d": "gymnasium.envs.mujoco.walker2d_v4:Walker2dEnv",
}
D4RL_STYLE_LEVELS = ("medium", "medium-replay", "medium-expert", "expert")


def register_d4rl_style_envs() -> None:
    """Gymnasium ids ``D4RLStyle/<task>-<level>-v0``, one per D4RL-style dataset (as D4RL named its envs), so a Zoo
    YAML can hold one entry per dataset; each makes the task's v4 environment with a 1000-step limit."""
    import gymnasium as gym

    for task, entry_point in D4RL_STYLE_TASKS.items():
        for level in D4RL_STYLE_LEVELS:
            env_id = f"D4RLStyle/{task}-{level}-v0"
            if env_id not in gym.registry:
                gym.register(id=env_id, entry_point=entry_point, max_episode_steps=1000)


def _sampled_params(sampled_params: dict[str, Any]) -> dict[str, Any]:
    """Optuna's sampled values are already constructor arguments (used by ``--load-trial``)."""
    return dict(sampled_params)


def register() -> None:
    """Add our algorithms and samplers to RL Zoo's registries (in place: every Zoo module sees them)."""
    import rl_zoo3
    from rl_zoo3 import hyperparams_opt

    rl_zoo3.ALGOS.update(ALGORITHMS)  # type: ignore[arg-type]
    hyperparams_opt.HYPERPARAMS_SAMPLER.update({"gmpo": sample_gmpo_params, "gmpg": sample_gmpg_params})
    hyperparams_opt.HYPERPARAMS_CONVERTER.update({"gmpo": _sampled_params, "gmpg": _sampled_params})
    register_d4rl_style_envs()


def _algo(args: list[str]) -> str | None:
    for i, arg in enumerate(args):
        if arg == "--algo" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--algo="):
            return arg.split("=", 1)[1]
    return None


def zoo_arguments(command: str, args: list[str]) -> list[str]:
    """The Zoo's own arguments for one of our commands: ``optimize`` is ``train -optimize``, and training uses
    our packaged YAML unless ``-conf``/``--conf-file`` is given.

    :param command: "train", "enjoy" or "optimize"
    :param args: the remaining command-line arguments
    :return: arguments for ``rl_zoo3.train`` or ``rl_zoo3.enjoy``
    """
    args = list(args)
    if command == "optimize" and "-optimize" not in args and "--optimize-hyperparameters" not in args:
        args.append("-optimize")
    algo = _algo(args)
    has_conf = any(a in ("-conf", "--conf-file") or a.startswith("--conf-file=") for a in args)
    if command in ("train", "optimize") and not has_conf and algo in ALGORITHMS:
        args += ["--conf-file", os.path.join(CONFIG_DIR, f"{algo}.yml")]
    return args


def main(argv: list[str] | None = None) -> None:
    """Console entry point.

    :param argv: ``[command, *zoo arguments]`` (default: ``sys.argv[1:]``)
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        print(__doc__)
        raise SystemExit(f"usage: sb3-generative-zoo {{{','.join(COMMANDS)}}} --algo {{gmpo,gmpg}} --env ENV [zoo options]")
    command, rest = argv[0], zoo_arguments(argv[0], argv[1:])
    register()
    program = sys.argv[0]
    sys.argv = [f"sb3-generative-zoo {command}", *rest]
    try:
        if command == "enjoy":
            from rl_zoo3.enjoy import enjoy

            enjoy()
        else:
            from rl_zoo3.train import train

            train()
    finally:
        sys.argv[0] = program


if __name__ == "__main__":
    main()
