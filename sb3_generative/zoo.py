"""RL Zoo entry point: ``python -m sb3_generative.zoo {train,enjoy,optimize} --algo gmpo --env Hopper-v4 ...``.

RL Zoo validates ``--algo`` against its ``ALGOS`` dict before importing any plug-in module, so
``python -m rl_zoo3.train --algo gmpo`` cannot work (argparse rejects the
unknown choice before any ``--gym-packages`` module is imported). This wrapper registers GMPO and GMPG in
``rl_zoo3.ALGOS`` (the dict every Zoo module shares) and their Optuna samplers in ``HYPERPARAMS_SAMPLER``, then
runs the Zoo's own ``train`` / ``enjoy``. Without ``-conf``, our packaged YAML for the algorithm is used: the paper's
per-task values, or with ``--preset cpu`` one recipe for every dataset that fits a 2-core CPU. All Zoo options
work; ``n_timesteps``, ``--eval-freq``, ``--save-freq`` and ``-n`` count gradient steps.

    sb3-generative-zoo train --algo gmpo --env Hopper-v4 --eval-freq 10000 --eval-episodes 10
    sb3-generative-zoo train --algo gmpg --env D4RLStyle/hopper-medium-v0 --preset cpu
    sb3-generative-zoo enjoy --algo gmpo --env Hopper-v4 -f logs --load-best
    sb3-generative-zoo optimize --algo gmpo --env Hopper-v4 --n-trials 20 --storage sqlite:///gmpo.db
    sb3-generative-zoo plot -a gmpo gmpg -e D4RLStyle/hopper-medium-v0 -f logs --no-display -o results

``optimize`` trains the critic once and shares it across trials (``--no-shared-critic`` to train one per trial).
``plot`` runs RL Zoo's ``all_plots`` on the evaluation curves (``evaluations.npz``); RL Zoo's ``plot_train`` draws
training episodes, which an offline algorithm never plays.
"""

import importlib.util
import os
import sys
from typing import Any

from sb3_generative.gmpg import GMPG
from sb3_generative.gmpo import GMPO

ALGORITHMS = {"gmpo": GMPO, "gmpg": GMPG}
CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "zoo_configs")
#: ``--preset``: the folder of its YAML files
PRESETS = {"paper": CONFIG_DIR, "cpu": os.path.join(CONFIG_DIR, "cpu")}
COMMANDS = ("train", "enjoy", "optimize", "plot")
#: RL Zoo YAML keys that configure the Zoo itself, not the algorithm's constructor
ZOO_KEYS = ("n_timesteps", "policy", "normalize", "n_envs", "env_wrapper", "frame_stack", "callback", "env_kwargs")


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
    YAML can hold one entry per dataset; each makes the task's v4 environment with a 1000-step limit. With the maze
    extra, ``D4RLStyle/pointmaze-<maze>[-dense]-v0`` make each PointMaze dataset's single-goal evaluation maze."""
    import gymnasium as gym

    for task, entry_point in D4RL_STYLE_TASKS.items():
        for level in D4RL_STYLE_LEVELS:
            env_id = f"D4RLStyle/{task}-{level}-v0"
            if env_id not in gym.registry:
                gym.register(id=env_id, entry_point=entry_point, max_episode_steps=1000)
    if importlib.util.find_spec("gymnasium_robotics") is None:
        return  # the mazes need the maze extra
    from sb3_generative.data.pointmaze import EVAL_STEPS

    for maze, steps in EVAL_STEPS.items():
        for dense in (False, True):
            env_id = f"D4RLStyle/pointmaze-{maze}{'-dense' if dense else ''}-v0"
            if env_id not in gym.registry:  # the dataset's single-goal evaluation maze
                gym.register(id=env_id, entry_point="sb3_generative.data.pointmaze:make_eval_env",
                             kwargs={"maze": maze, "dense": dense}, max_episode_steps=steps)  # fmt: skip


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
    """The Zoo's own arguments for one of our commands: ``optimize`` is ``train -optimize``, training uses our
    packaged YAML (``--preset paper``, the default, or ``cpu``) unless ``-conf``/``--conf-file`` is given, and torch
    runs one CPU thread unless ``--num-threads`` says otherwise (a second thread competing with other work for a core
    slows the updates several times).

    :param command: "train", "enjoy" or "optimize"
    :param args: the remaining command-line arguments
    :return: arguments for ``rl_zoo3.train`` or ``rl_zoo3.enjoy``
    """
    preset = _option(args, ("--preset",))
    if preset is not None and preset not in PRESETS:
        raise SystemExit(f"--preset must be one of {sorted(PRESETS)}, got {preset!r}")
    args = _without(args, "--preset")
    has_conf = any(a in ("-conf", "--conf-file") or a.startswith("--conf-file=") for a in args)
    if preset is not None and has_conf:
        raise SystemExit("--preset and -conf/--conf-file both choose the YAML file: give one of them")
    if command == "optimize" and "-optimize" not in args and "--optimize-hyperparameters" not in args:
        args.append("-optimize")
    algo = _algo(args)
    if command in ("train", "optimize") and not has_conf and algo in ALGORITHMS:
        args += ["--conf-file", os.path.join(PRESETS[preset or "paper"], f"{algo}.yml")]
    if command in ("train", "optimize") and not any(a.startswith("--num-threads") for a in args):
        args += ["--num-threads", "1"]
    return args


def _option(args: list[str], names: tuple[str, ...], default: str | None = None) -> str | None:
    """The value of the last of ``names`` in ``args`` (``--name value`` or ``--name=value``)."""
    value = default
    for i, arg in enumerate(args):
        for name in names:
            if arg == name and i + 1 < len(args):
                value = args[i + 1]
            elif arg.startswith(name + "="):
                value = arg.split("=", 1)[1]
    return value


def share_critic(args: list[str]) -> list[str]:
    """For ``optimize``: train the entry's IQL critic once, save it in the log folder, and hand it to every trial.

    Each trial otherwise trains its own critic (``critic_steps`` of the YAML, 1.2 M steps in the packaged entries)
    although only the policy's settings are sampled. The critic is saved as
    ``<log folder>/<algo>/shared_critic_<env>_seed<seed>.zip`` and reused when it exists; the trials run from a copy of
    the YAML with ``critic:`` set to it. An entry that already names a ``critic`` is left alone.

    :param args: the Zoo's arguments (``--conf-file`` already set)
    :return: the arguments with ``--conf-file`` pointing at the copy
    """
    import yaml

    algo, env_id = _option(args, ("--algo",)), _option(args, ("--env",))
    conf = _option(args, ("-conf", "--conf-file"))
    if algo not in ALGORITHMS or env_id is None or conf is None or not conf.endswith((".yml", ".yaml")):
        return args
    with open(conf) as file:
        entries = yaml.safe_load(file)
    key = env_id if env_id in entries else "default"
    entry = dict(entries.get(key) or {})
    if "critic" in entry:
        return args
    folder = os.path.join(_option(args, ("-f", "--log-folder"), "logs") or "logs", algo)
    seed = int(_option(args, ("--seed",), "0") or 0)
    seed = max(seed, 0)
    name = env_id.replace("/", "-")
    path = os.path.join(folder, f"shared_critic_{name}_seed{seed}.zip")
    if not os.path.exists(path):
        _train_critic(algo, env_id, entry, path, seed, _option(args, ("--device",), "auto") or "auto")
    shared = os.path.join(folder, f"shared_critic_{name}.yml")
    with open(shared, "w") as file:
        yaml.safe_dump({**entries, key: {**entry, "critic": os.path.abspath(path)}}, file)
    return [*_without(args, "-conf", "--conf-file"), "--conf-file", shared]


def _train_critic(algo: str, env_id: str, entry: dict[str, Any], path: str, seed: int, device: str) -> None:
    import inspect

    cls = ALGORITHMS[algo]
    accepted = set(inspect.signature(cls).parameters)
    kwargs = {k: v for k, v in entry.items() if k in accepted and k not in ZOO_KEYS}
    if isinstance(kwargs.get("policy_kwargs"), str):
        kwargs["policy_kwargs"] = eval(kwargs["policy_kwargs"])  # as RL Zoo reads its own YAML (the user's file)
    for key in ("learning_rate", "bc_learning_rate"):  # the Zoo's "lin_3e-4" schedules: only the critic trains here
        kwargs.pop(key, None)
    model = cls(entry.get("policy", "GenerativePolicy"), env_id, seed=seed, device=device, **kwargs)
    print(f"Training the critic once for every trial ({model.critic_steps} steps); saved to {path}")
    model.pretrain(phases=("critic",), progress_bar=False)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    model.save(path)


def _without(args: list[str], *names: str) -> list[str]:
    """``args`` without the options ``names`` and their values (``--name value`` or ``--name=value``)."""
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg in names:
            skip = True
        elif not any(arg.startswith(name + "=") for name in names):
            out.append(arg)
    return out


def plot_arguments(args: list[str]) -> list[str]:
    """RL Zoo's ``all_plots`` arguments with env ids written as the Zoo names its log folders (``/`` as ``-``):
    ``-e D4RLStyle/hopper-medium-v0`` would match no folder and plot a silent 0.0.

    :param args: the arguments of ``rl_zoo3.plots.all_plots``
    """
    out, in_envs = [], False
    for arg in args:
        if arg in ("-e", "--env"):
            in_envs = True
        elif arg.startswith("-"):
            in_envs = False
        elif in_envs:
            arg = arg.replace("/", "-")
        out.append(arg)
    return out


def main(argv: list[str] | None = None) -> None:
    """Console entry point.

    :param argv: ``[command, *zoo arguments]`` (default: ``sys.argv[1:]``)
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        print(__doc__)
        raise SystemExit(f"usage: sb3-generative-zoo {{{','.join(COMMANDS)}}} --algo {{gmpo,gmpg}} --env ENV [zoo options]")
    command = argv[0]
    register()
    rest = plot_arguments(argv[1:]) if command == "plot" else zoo_arguments(command, argv[1:])
    if command == "optimize" and "--no-shared-critic" not in rest:
        rest = share_critic(rest)
    rest = [arg for arg in rest if arg != "--no-shared-critic"]
    program = sys.argv[0]
    sys.argv = [f"sb3-generative-zoo {command}", *rest]
    try:
        _run(command)
    finally:
        sys.argv[0] = program


def _run(command: str) -> None:
    if command == "enjoy":
        from rl_zoo3.enjoy import enjoy

        enjoy()
    elif command == "plot":  # the evaluation curves (offline training has no training episodes for plot_train)
        from rl_zoo3.plots.all_plots import all_plots

        all_plots()
    else:
        from rl_zoo3.train import train

        train()


if __name__ == "__main__":
    main()
