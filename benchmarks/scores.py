"""The paper's score table, reproducible by one command: {GMPO, GMPG} x generative models x datasets x seeds,
beside d3rlpy's own IQL on the same files and seeds.

Hyperparameters come from a preset of YAML files: ``--preset paper`` (``zoo_configs/{gmpo,gmpg}.yml``, the paper's
per-task values and GPU-scale budgets, all three models) or ``--preset cpu`` (``zoo_configs/cpu/``, one recipe for
every dataset that fits a 2-core CPU, the model its YAML names). ``--budget`` scales every step count (policy,
critic, behaviour cloning) by one factor and ``--set`` overrides values. Each (dataset, seed) trains one IQL critic,
shared by all of its GMPO and GMPG runs as in the paper. Every run is
evaluated ``--evals`` times with ``--eval-episodes`` episodes played in parallel (one vectorised environment per
episode, one batched ``predict`` per step), and writes its evaluations and a checkpoint after each one: a killed
command continues where it stopped when run again with the same arguments. Runs go ``--jobs`` at a time in
separate processes (on a GPU they share it), or as Ray tasks (``--ray``, ``--ray-address``). The output folder gets
``scores.csv`` (every evaluation), ``scores.md`` (final and best scores, mean ± std over seeds, beside the data's own
average), ``final_with_noise.csv`` (each GMPO and GMPG run's final policy scored again with the paper's sampler, its
initial noise from N(0, I), where the evaluations solve from zero noise), ``statistics.md`` and
``performance_profile.png`` (rliable) and ``curves_<dataset>.png``.

    python benchmarks/scores.py --preset cpu --seeds 0 1 --jobs 2 --device cpu --iql-steps 100000
    python benchmarks/scores.py --datasets hopper-medium --seeds 0 1 --budget 0.01 --jobs 2 --device cpu \\
        --set batch_size=256 critic_batch_size=256 "policy_kwargs=dict(net_arch=[256, 256])"

Needs the datasets of ``sb3-generative-data d4rl-style`` under ``MINARI_DATASETS_PATH``.
"""

import argparse
import csv
import dataclasses
import glob
import json
import shlex
import os
import sys
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any

import numpy as np
import yaml

from sb3_generative.zoo import PRESETS  # the YAML folders: the paper's per-task values, and the CPU recipe

DATASETS = [f"{task}-{level}" for task in ("halfcheetah", "hopper", "walker2d") for level in
            ("medium", "medium-replay", "medium-expert")]  # fmt: skip
#: the datasets ``sb3-generative-data d4rl-style --replay`` can make (no walker2d medium-replay recording exists)
LOCAL_DATASETS = [d for d in DATASETS if d != "walker2d-medium-replay"]
#: ``sb3-generative-data pointmaze``'s sparse-reward mazes (the CPU preset has entries for them; opt in by name)
MAZE_DATASETS = [f"pointmaze-{maze}" for maze in ("umaze", "medium", "large")]
MODELS = ["vpsde", "gvp", "icfm"]
EVAL_FIELDS = ["step", "wall_s", "return_mean", "return_std", "score_mean", "score_std"]
IQL, BC, REBRAC = "iql-d3rlpy", "bc-d3rlpy", "rebrac-d3rlpy"
#: d3rlpy's baselines, by job kind: the column each one fills
BASELINES = {"bc": BC, "iql": IQL, "rebrac": REBRAC}
#: the column of the generative behaviour-cloned start: each GMPG run's step-0 evaluation (mu, before any GMPG step)
MU = "mu-gvp"  # the CPU recipe's


def mu_column(method: str) -> str | None:
    """The mu column a policy column's step-0 evaluation fills ("gmpg-gvp" -> "mu-gvp"), None for other columns."""
    algo, _, model = method.partition("-")
    return f"mu-{model}" if algo == "gmpg" and model in MODELS else None
#: ReBRAC's (actor_beta, critic_beta) per dataset, from d3rlpy's ``reproductions/offline/rebrac.py`` (the ReBRAC
#: paper's table)
REBRAC_BETAS = {
    "halfcheetah-medium": (0.001, 0.01), "halfcheetah-medium-replay": (0.01, 0.001),
    "halfcheetah-medium-expert": (0.01, 0.01), "hopper-medium": (0.01, 0.001), "hopper-medium-replay": (0.05, 0.5),
    "hopper-medium-expert": (0.1, 0.01), "walker2d-medium": (0.05, 0.1), "walker2d-medium-replay": (0.05, 0.01),
    "walker2d-medium-expert": (0.01, 0.01),
}  # fmt: skip
#: ``done.json``'s key for a policy run's final score with the paper's sampler (initial noise from N(0, I))
NOISE_KEY = "final_with_noise"


@dataclasses.dataclass(frozen=True)
class Job:
    """One unit of work: the shared critic of a (dataset, seed), a policy run, or one of d3rlpy's baselines."""

    kind: str  # "critic", "policy", or a key of BASELINES ("bc", "iql", "rebrac")
    dataset: str  # e.g. "hopper-medium"
    seed: int
    algo: str = ""  # "gmpo" / "gmpg" for policy runs
    model: str = ""  # "vpsde" / "gvp" / "icfm" for policy runs

    @property
    def name(self) -> str:
        if self.kind in BASELINES:
            return BASELINES[self.kind]
        return f"{self.algo}-{self.model}" if self.kind == "policy" else "critic"

    def folder(self, out: str) -> str:
        return os.path.join(out, "runs", self.name, self.dataset, f"seed{self.seed}")


# ---------------------------------------------------------------------------------------------------- configuration
def parse_value(text: str) -> Any:
    """A ``--set`` value: a Python literal or ``dict(...)`` (as RL Zoo reads ``policy_kwargs``), else the string."""
    try:
        return eval(text, {"dict": dict, "__builtins__": {}})  # trusted command-line input, as RL Zoo does
    except Exception:
        return text


def hyperparameters(
    algo: str, dataset: str, budget: float, overrides: dict[str, Any], preset: str = "paper"
) -> dict[str, Any]:
    """Constructor arguments and ``n_timesteps`` of one run: the YAML entry, steps scaled by ``budget``, overrides.

    :param algo: "gmpo" or "gmpg"
    :param dataset: e.g. "hopper-medium"
    :param budget: factor on ``n_timesteps``, ``critic_steps`` and ``bc_steps``
    :param overrides: values replacing the YAML's (``policy_kwargs`` entries are merged)
    :param preset: "paper" (``zoo_configs/``) or "cpu" (``zoo_configs/cpu/``)
    :return: hyperparameters, ``policy_kwargs`` as a dict
    """
    with open(os.path.join(PRESETS[preset], f"{algo}.yml")) as file:
        config = yaml.safe_load(file)
    params = dict(config[f"D4RLStyle/{dataset}-v0"])
    params["policy_kwargs"] = parse_value(params.get("policy_kwargs", "dict()"))
    for key in ("n_timesteps", "critic_steps", "bc_steps"):
        if key in params:
            params[key] = max(1, round(params[key] * budget))
    for key, value in overrides.items():
        if key == "policy_kwargs":
            params["policy_kwargs"] = {**params["policy_kwargs"], **value}
        else:
            params[key] = value
    return params


def evaluation_steps(total: int, evals: int, every: int | None = None) -> list[int]:
    """The steps after which a run is evaluated: every ``every`` steps and at the end, else ``evals`` points evenly
    spaced up to ``total``."""
    if every:
        return sorted({*range(every, total + 1, every), total})
    return sorted({max(1, round(total * (i + 1) / evals)) for i in range(evals)})


# ---------------------------------------------------------------------------------------------------- evaluation
def evaluate(model: Any, dataset: str, episodes: int, seed: int, deterministic: bool = True) -> np.ndarray:
    """Returns of ``episodes`` episodes played at once: one vectorised environment per episode, so each step of all
    of them is one batched ``predict``.

    :param model: anything with SB3's ``predict``
    :param dataset: e.g. "hopper-medium" (its ``D4RLStyle`` environment)
    :param episodes: number of episodes
    :param seed: seed of the environments
    :param deterministic: deterministic actions (for GMPO and GMPG: the ODE solved from zero initial noise)
    :return: episode returns
    """
    from sb3_generative.common.evaluation import evaluate as evaluate_model
    from sb3_generative.zoo import register_d4rl_style_envs

    register_d4rl_style_envs()
    return evaluate_model(model, f"D4RLStyle/{dataset}-v0", episodes, seeds=[seed], deterministic=deterministic).returns[0]


def score_with_noise(model: Any, job: Job, episodes: int) -> dict[str, float]:
    """A trained policy's score with the paper's sampler: the initial noise of each action drawn from N(0, I), as
    GenerativeRL evaluates, where the table's evaluations solve from zero noise (``predict(deterministic=True)``).
    The two differ where the data mixes behaviours: the zero-noise path can land between the modes of the mixture.
    The noise is seeded by the run's seed, outside the training random state.

    :param model: a trained GMPO or GMPG model
    :param job: its run
    :param episodes: number of episodes
    :return: the D4RL-normalised ``score_mean`` and ``score_std`` over the episodes
    """
    import torch as th

    with th.random.fork_rng():
        th.manual_seed(job.seed)
        scores = model.normalized_score(evaluate(model, job.dataset, episodes, job.seed, deterministic=False))
    return {"score_mean": round(float(scores.mean()), 2), "score_std": round(float(scores.std()), 2)}


class Recorder:
    """A run's evaluations: ``evals.csv`` appended row by row, and the score of each evaluation.

    Its ``wall_s`` column is the run's training time up to the evaluation, evaluations and checkpoints left out, and
    carried over a resume (the time of a killed segment after its last checkpoint is lost), so that columns compare
    at equal training time whatever their evaluation cadence."""

    def __init__(self, job: Job, out: str, episodes: int, normalize: Callable[[np.ndarray], np.ndarray]) -> None:
        self.job, self.episodes, self.normalize = job, episodes, normalize
        self.path = os.path.join(job.folder(out), "evals.csv")
        self.start, self.offset, self.paused, self.pause_from = time.time(), 0.0, 0.0, 0.0
        self.last_wall = 0.0  # training seconds at the last evaluation

    def rows(self, up_to: int) -> list[dict[str, str]]:
        """Rows already written, keeping those at or before step ``up_to`` (the checkpoint's)."""
        if not os.path.exists(self.path):
            return []
        with open(self.path) as file:
            return [row for row in csv.DictReader(file) if int(row["step"]) <= up_to]

    def truncate(self, up_to: int) -> None:
        """Drop rows written after the checkpoint being resumed from (a kill between the row and the save), and
        continue the training time from the last row kept."""
        kept = self.rows(up_to)
        self.offset = float(kept[-1]["wall_s"]) if kept else 0.0
        self._write(kept, mode="w")

    def training_seconds(self) -> float:
        """Training time so far: wall time since the start (or the resumed row) less evaluations and checkpoints."""
        return self.offset + time.time() - self.start - self.paused

    def record(self, model: Any, step: int, episodes: int | None = None) -> float:
        """Evaluate ``model`` and append a row; the time it takes (and the checkpoint after it, until ``resume``) is
        not training time.

        :param model: anything with SB3's ``predict``
        :param step: the run's gradient steps so far
        :param episodes: episodes of this evaluation (default: the recorder's)
        :return: the mean D4RL-normalised score
        """
        self.pause_from = time.time()
        wall = self.last_wall = self.training_seconds()
        returns = evaluate(model, self.job.dataset, episodes or self.episodes, self.job.seed)
        scores = self.normalize(returns)
        row = {
            "step": str(step),
            "wall_s": f"{wall:.1f}",
            "return_mean": f"{returns.mean():.2f}",
            "return_std": f"{returns.std():.2f}",
            "score_mean": f"{scores.mean():.2f}",
            "score_std": f"{scores.std():.2f}",
        }
        self._write([row], mode="a")
        print(f"[{self.job.name} {self.job.dataset} seed {self.job.seed}] step {step}: score {scores.mean():.1f}", flush=True)
        return float(scores.mean())

    def resume(self) -> None:
        """Training goes on: the time since the last ``record`` began was evaluation and checkpointing."""
        self.paused += time.time() - self.pause_from

    def _write(self, rows: list[dict[str, str]], mode: str) -> None:
        new = mode == "w" or not os.path.exists(self.path)
        with open(self.path, mode, newline="") as file:
            writer = csv.DictWriter(file, EVAL_FIELDS)
            if new:
                writer.writeheader()
            writer.writerows(rows)


def mark_done(folder: str, info: dict[str, Any]) -> None:
    """Write a finished run's ``done.json`` atomically (a kill leaves the old file or none, never half of one)."""
    path = os.path.join(folder, "done.json")
    with open(path + ".tmp", "w") as file:
        json.dump(info, file, indent=2)
    os.replace(path + ".tmp", path)


def read_done(folder: str) -> dict[str, Any] | None:
    """A run folder's ``done.json``, None when the run has not finished."""
    path = os.path.join(folder, "done.json")
    if not os.path.exists(path):
        return None
    with open(path) as file:
        info: dict[str, Any] = json.load(file)
    return info


def add_noise_score(job: Job, args: argparse.Namespace) -> str:
    """Score a policy run that finished without its ``NOISE_KEY`` (before scores.py recorded it) from its final
    checkpoint; imported runs, whose checkpoints stayed on their machine, are left as they are."""
    folder = job.folder(args.out)
    info, checkpoint = read_done(folder), os.path.join(folder, "checkpoint.zip")
    if job.kind != "policy" or info is None or NOISE_KEY in info or not os.path.exists(checkpoint):
        return f"{job} already done"
    from sb3_generative import GMPG, GMPO

    cls = GMPO if job.algo == "gmpo" else GMPG
    info[NOISE_KEY] = score_with_noise(cls.load(checkpoint, env=None, device=args.device), job, args.final_episodes)
    mark_done(folder, info)
    return f"{job} already done; scored with N(0, I) noise: {info[NOISE_KEY]['score_mean']}"


# ---------------------------------------------------------------------------------------------------- the jobs
def run_job(job: Job, args: argparse.Namespace) -> str:
    """Run one job in this (worker) process; the return value is a line for the log."""
    import torch as th

    th.set_num_threads(args.threads)
    os.makedirs(job.folder(args.out), exist_ok=True)
    if os.path.exists(os.path.join(job.folder(args.out), "done.json")):
        return add_noise_score(job, args)
    start = time.time()
    try:
        train_critic(job, args) if job.kind == "critic" else train_policy(job, args) if job.kind == "policy" else \
            train_baseline(job, args)
    except Exception:
        with open(os.path.join(job.folder(args.out), "error.txt"), "w") as file:
            file.write(traceback.format_exc())
        return f"{job} FAILED: see {job.folder(args.out)}/error.txt"
    return f"{job} finished in {time.time() - start:.0f} s"


def critic_path(args: argparse.Namespace, dataset: str, seed: int) -> str:
    return os.path.join(Job("critic", dataset, seed).folder(args.out), "critic.zip")


def train_critic(job: Job, args: argparse.Namespace) -> None:
    """The IQL critic of a (dataset, seed): the GMPO entry's critic settings (the paper's GMPG entries have the same),
    with ``--set`` / ``--gmpo-set`` overrides."""
    params = hyperparameters("gmpo", job.dataset, args.budget, args.overrides.get("gmpo", {}), args.preset)
    model = build("gmpo", job, params, args, critic=None)
    log_training(model, job.folder(args.out), 0)
    start = time.time()
    model.pretrain(log_interval=max(1, params["critic_steps"] // 20), phases=("critic",))  # GMPO's BC: in its run
    train_s = time.time() - start
    model.save(critic_path(args, job.dataset, job.seed))
    average = float(model.normalized_score(dataset_returns(model)).mean())
    info = {"critic_steps": params["critic_steps"], "dataset_average": average, "train_s": round(train_s, 1)}
    mark_done(job.folder(args.out), info)


def log_training(model: Any, folder: str, start: int) -> None:
    """Write a run's training statistics (``critic/*``, ``bc/*``, ``train/*``: GMPG's Q, KL, log pi, log mu and share
    of actions outside the box, GMPO's clamped share and effective sample size) to ``train_from_<start>.csv`` beside
    its evaluations, one file per (re)start, so that a collapse shows without reloading checkpoints."""
    from stable_baselines3.common.logger import CSVOutputFormat, Logger

    model.set_logger(Logger(folder, [CSVOutputFormat(os.path.join(folder, f"train_from_{start}.csv"))]))


def dataset_returns(model: Any) -> np.ndarray:
    from sb3_generative.common.datasets import load_offline_data

    return load_offline_data(model.dataset_source).episode_returns()


def build(algo: str, job: Job, params: dict[str, Any], args: argparse.Namespace, critic: str | None) -> Any:
    """A GMPO or GMPG model for a job's dataset and seed from its hyperparameters."""
    from sb3_generative import GMPG, GMPO
    from sb3_generative.zoo import register_d4rl_style_envs

    register_d4rl_style_envs()
    kwargs = {k: v for k, v in params.items() if k not in ("n_timesteps", "policy", "dataset")}
    cls = GMPO if algo == "gmpo" else GMPG
    return cls(
        params.get("policy", "GenerativePolicy"),
        f"D4RLStyle/{job.dataset}-v0",
        dataset=params["dataset"],
        critic=critic,
        seed=job.seed,
        device=args.device,
        verbose=0,
        **kwargs,
    )


def train_policy(job: Job, args: argparse.Namespace) -> None:
    """A GMPO or GMPG run from the shared critic, evaluated and checkpointed at its evaluation steps."""
    from stable_baselines3.common.callbacks import BaseCallback

    from sb3_generative import GMPG, GMPO

    params = hyperparameters(job.algo, job.dataset, args.budget, args.overrides.get(job.algo, {}), args.preset)
    params["policy_kwargs"]["generative_model"] = job.model
    folder, total = job.folder(args.out), params["n_timesteps"]
    checkpoint = os.path.join(folder, "checkpoint.zip")
    if os.path.exists(checkpoint):  # resume: the checkpoint holds the step count and random states
        cls = GMPO if job.algo == "gmpo" else GMPG
        model = cls.load(checkpoint, env=None, device=args.device, dataset=params["dataset"])
    else:
        model = build(job.algo, job, params, args, critic=critic_path(args, job.dataset, job.seed))
    recorder = Recorder(job, args.out, args.eval_episodes, model.normalized_score)
    recorder.truncate(model.num_timesteps if os.path.exists(checkpoint) else -1)
    log_training(model, folder, model.num_timesteps)
    if not os.path.exists(checkpoint) and model.bc_steps > 0:
        model.pretrain()  # behaviour cloning: the starting point the policy phase must improve on, scored at step 0
        recorder.record(model, 0, args.final_episodes)  # mu's score is a column of its own: a final's episodes
        model.save(checkpoint)
        recorder.resume()
    points = [s for s in evaluation_steps(total, args.evals, args.eval_freq) if s > model.num_timesteps]

    class Evaluate(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps in points:
                final = self.num_timesteps == total
                recorder.record(self.model, self.num_timesteps, args.final_episodes if final else None)
                self.model.save(checkpoint)
                recorder.resume()
            return True

    if points:
        log_interval = max(1, total // 50)  # 50 rows of training statistics per run
        model.learn(total - model.num_timesteps, callback=Evaluate(), reset_num_timesteps=False, log_interval=log_interval)
    info = {"n_timesteps": total, "train_s": round(recorder.last_wall, 1), "params": {k: repr(v) for k, v in params.items()}}
    mark_done(folder, {**info, NOISE_KEY: score_with_noise(model, job, args.final_episodes)})


def baseline_steps(job: Job, args: argparse.Namespace) -> int:
    """A d3rlpy baseline's gradient steps: ``--<kind>-steps``, else the preset's critic steps (scaled by ``--budget``)."""
    steps: int | None = getattr(args, f"{job.kind}_steps")
    return steps or hyperparameters("gmpo", job.dataset, args.budget, {}, args.preset)["critic_steps"]


def d3rlpy_config(job: Job, total: int, reward_scale: float) -> Any:
    """A d3rlpy baseline's settings: those of d3rlpy's own D4RL reproduction scripts (``reproductions/offline/``), the
    schedules stretched to this run's ``total`` steps; d3rlpy's defaults for BC, which has no such script.

    - BC: ``BCConfig()``, a deterministic policy regressed on the data's actions (what "BC" is in the D4RL tables);
    - IQL (``iql.py``): lr 3e-4, batch 256, temperature 3, weights clipped at 100, expectile 0.7, rewards scaled by
      ``1000 / (max return - min return)``, the actor's learning rate cosine-annealed to 0 at the last step;
    - ReBRAC (``rebrac.py``): three hidden layers of 256, layer normalisation in the critic, lr 1e-3, target
      smoothing 0.2 clipped at 0.5, the actor updated every second step, the per-dataset (actor, critic) BC
      penalties of the ReBRAC paper (``REBRAC_BETAS``), standardised observations, raw rewards; batch 256 where the
      script has 1024, the one change for the CPU budget (an update costs 24 ms against 73 ms on one core, so 37,000
      steps fit the quarter hour of a GMPO run where 12,000 would at 1024; batch 256 is also every other column's).

    :param job: the baseline's job (its kind and dataset)
    :param total: gradient steps of the run
    :param reward_scale: IQL's reward factor for this dataset (``locomotion_reward_scale``)
    :return: a d3rlpy config, to ``create`` on a device
    """
    import d3rlpy

    if job.kind == "bc":
        return d3rlpy.algos.BCConfig()
    if job.kind == "iql":
        schedule = d3rlpy.optimizers.CosineAnnealingLRFactory(T_max=total)
        return d3rlpy.algos.IQLConfig(
            actor_learning_rate=3e-4, critic_learning_rate=3e-4, batch_size=256, weight_temp=3.0, max_weight=100.0,
            expectile=0.7, reward_scaler=d3rlpy.preprocessing.MultiplyRewardScaler(reward_scale),
            actor_optim_factory=d3rlpy.optimizers.AdamFactory(lr_scheduler_factory=schedule),
        )  # fmt: skip
    actor_beta, critic_beta = REBRAC_BETAS.get(job.dataset, (0.01, 0.01))  # the script's default off its table
    return d3rlpy.algos.ReBRACConfig(
        actor_learning_rate=1e-3, critic_learning_rate=1e-3, batch_size=256, gamma=0.99,
        actor_encoder_factory=d3rlpy.models.VectorEncoderFactory([256, 256, 256]),
        critic_encoder_factory=d3rlpy.models.VectorEncoderFactory([256, 256, 256], use_layer_norm=True),
        target_smoothing_sigma=0.2, target_smoothing_clip=0.5, update_actor_interval=2, actor_beta=actor_beta,
        critic_beta=critic_beta, observation_scaler=d3rlpy.preprocessing.StandardObservationScaler(),
    )  # fmt: skip


def train_baseline(job: Job, args: argparse.Namespace) -> None:
    """One of d3rlpy's baselines (``d3rlpy_config``) on the same Minari file, seed and evaluation episodes as the
    policy runs, evaluated and checkpointed at its evaluation steps (the last on ``--final-episodes`` episodes)."""
    import d3rlpy

    from sb3_generative.common.datasets import load_offline_data, locomotion_reward_scale, normalized_score

    total = baseline_steps(job, args)
    params = hyperparameters("gmpo", job.dataset, 1.0, {}, args.preset)
    data = load_offline_data(params["dataset"])
    # the YAML's reward scaling (the mazes' sparse goal reward is left as it is)
    reward_scale = locomotion_reward_scale(data) if params.get("normalize_reward", True) else 1.0
    folder = job.folder(args.out)
    state_path = os.path.join(folder, "checkpoint.json")  # names the last complete checkpoint and its step
    d3rlpy.seed(job.seed)
    if os.path.exists(state_path):
        with open(state_path) as file:
            state = json.load(file)
        algo = d3rlpy.load_learnable(os.path.join(folder, state["file"]), device=d3rlpy_device(args.device))
        done = state["step"]
    else:
        algo = d3rlpy_config(job, total, reward_scale).create(device=d3rlpy_device(args.device))
        done = 0
    recorder = Recorder(job, args.out, args.eval_episodes, lambda r: normalized_score(r, data))
    recorder.truncate(done)
    mdp, policy = mdp_dataset(data), D3rlpyPolicy(algo, data.observation_space)
    for point in [s for s in evaluation_steps(total, args.evals, args.eval_freq) if s > done]:
        algo.fit(mdp, n_steps=point - done, n_steps_per_epoch=point - done, show_progress=False,
                 logger_adapter=d3rlpy.logging.NoopAdapterFactory())  # fmt: skip
        recorder.record(policy, point, args.final_episodes if point == total else None)
        algo.save(os.path.join(folder, f"checkpoint_{point}.d3"))
        with open(state_path + ".tmp", "w") as file:
            json.dump({"file": f"checkpoint_{point}.d3", "step": point}, file)
        os.replace(state_path + ".tmp", state_path)  # only now does the new checkpoint count
        if done and os.path.exists(os.path.join(folder, f"checkpoint_{done}.d3")):
            os.remove(os.path.join(folder, f"checkpoint_{done}.d3"))
        done = point
        recorder.resume()
    average = float(normalized_score(data.episode_returns(), data).mean())
    mark_done(folder, {"n_steps": total, "train_s": round(recorder.last_wall, 1), "dataset_average": average})


def d3rlpy_device(device: str) -> str:
    """d3rlpy wants "cpu:0" or "cuda:N" (a bare "cuda" breaks its loading)."""
    if device == "auto":
        import torch as th

        device = "cuda" if th.cuda.is_available() else "cpu"
    return device if ":" in device else f"{device}:0"


def mdp_dataset(data: Any) -> Any:
    """d3rlpy's dataset from our flat transitions: episodes end at terminations or time-outs (never both), the last
    (cut-off) episode at a time-out; rewards as recorded (a baseline scales them with its own ``reward_scaler``)."""
    import d3rlpy

    timeouts = data.truncations & ~data.terminations
    if not (data.terminations[-1] or timeouts[-1]):
        timeouts = timeouts.copy()
        timeouts[-1] = True
    return d3rlpy.dataset.MDPDataset(
        observations=data.observations,
        actions=data.actions,
        rewards=data.rewards.astype(np.float32),
        terminals=data.terminations.astype(np.float32),
        timeouts=timeouts.astype(np.float32),
    )


class D3rlpyPolicy:
    """SB3's ``predict`` over a d3rlpy algorithm (its greedy actions), for ``evaluate_policy``; a Dict observation is
    flattened into the rows d3rlpy was trained on (``mdp_dataset``)."""

    def __init__(self, algo: Any, observation_space: Any = None) -> None:
        from sb3_generative.common.observations import ObservationLayout

        self.algo = algo
        self.layout = None if observation_space is None else ObservationLayout(observation_space)

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[np.ndarray, None]:  # fmt: skip
        if self.layout is not None and self.layout.is_dict:
            return self.algo.predict(self.layout.flatten(observation)), None
        return self.algo.predict(np.asarray(observation, dtype=np.float32)), None


def import_runs(args: argparse.Namespace, runs: list[Job], path: str) -> None:
    """Restore the finished runs of an earlier table's ``scores.csv`` (from another machine or session) as finished
    run folders, so that a table spans machines: only runs this plan has and has not finished itself. Their
    evaluations come back as they were, with their final score under N(0, I) noise where the ``final_with_noise.csv``
    beside that ``scores.csv`` has one; nothing of theirs is trained again (critics are not in ``scores.csv``)."""
    wanted = {(job.name, job.dataset, job.seed): job for job in runs}
    if not os.path.isfile(path):
        raise SystemExit(f"--import-runs: {path!r} is not a file (an earlier table's scores.csv)")
    noise = imported_noise_scores(os.path.join(os.path.dirname(os.path.abspath(path)), "final_with_noise.csv"))
    with open(path) as file:
        reader = csv.DictReader(file)
        missing = {"method", "dataset", "seed", "finished", *EVAL_FIELDS} - set(reader.fieldnames or [])
        if missing:
            raise SystemExit(f"--import-runs: {path!r} is not a scores.csv: no column(s) {sorted(missing)}")
        by_run: dict[tuple[str, str, int], list[dict[str, str]]] = {}
        for row in reader:
            if row["finished"] == "True":
                by_run.setdefault((row["method"], row["dataset"], int(row["seed"])), []).append(row)
    for key, run_rows in sorted(by_run.items()):
        job = wanted.get(key)
        if job is None or os.path.exists(os.path.join(job.folder(args.out), "done.json")):
            continue
        os.makedirs(job.folder(args.out), exist_ok=True)
        with open(os.path.join(job.folder(args.out), "evals.csv"), "w", newline="") as file:
            writer = csv.DictWriter(file, EVAL_FIELDS)
            writer.writeheader()
            writer.writerows(sorted(({f: row[f] for f in EVAL_FIELDS} for row in run_rows), key=lambda r: int(r["step"])))
        average = run_rows[0].get("dataset_average")
        if average not in (None, "") and not _is_number(average):
            raise SystemExit(f"--import-runs: {path!r} gives {key} a dataset_average of {average!r}, not a number")
        info: dict[str, Any] = {"imported_from": os.path.abspath(path), "dataset_average": average}
        if key in noise:
            info[NOISE_KEY] = noise[key]
        mark_done(job.folder(args.out), info)
        print(f"{job} imported from {path}", flush=True)
        here = run_dataset_average(Job("critic", job.dataset, job.seed).folder(args.out))
        if here is not None and average not in (None, "") and abs(here - float(average)) > 5e-4:
            print(f"warning: {job.name}/{job.dataset}/seed{job.seed} was trained on a {job.dataset} of average "
                  f"{float(average):.3f}; this machine's draw of it averages {here:.3f} (scores.md lists the draws)",
                  flush=True)  # fmt: skip


def imported_noise_scores(path: str) -> dict[tuple[str, str, int], dict[str, float]]:
    """The N(0, I)-noise final scores of an earlier table's ``final_with_noise.csv``, by (method, dataset, seed); none
    when the file is absent (a table from before that score)."""
    if not os.path.isfile(path):
        return {}
    scores = {}
    with open(path) as file:
        for row in csv.DictReader(file):
            try:
                key = (row["method"], row["dataset"], int(row["seed"]))
                scores[key] = {"score_mean": float(row["score_mean"]), "score_std": float(row["score_std"])}
            except (KeyError, TypeError, ValueError) as error:
                raise SystemExit(f"--import-runs: {path!r} is not a final_with_noise.csv ({error!r} in {row})") from error
    return scores


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------------------------------- report
def collect(args: argparse.Namespace, jobs: list[Job]) -> list[dict[str, Any]]:
    """Every evaluation of every run, tagged with its run; written to ``scores.csv``."""
    rows = []
    for job in jobs:
        path = os.path.join(job.folder(args.out), "evals.csv")
        if job.kind == "critic" or not os.path.exists(path):
            continue
        done = os.path.exists(os.path.join(job.folder(args.out), "done.json"))
        # an imported run keeps the average of the data it was trained on, which may be another machine's draw
        average = run_dataset_average(job.folder(args.out))
        average = recorded_average(args, job.dataset, job.seed) if average is None else average
        tags = {"method": job.name, "dataset": job.dataset, "seed": job.seed, "finished": done}
        with open(path) as file:
            for row in csv.DictReader(file):
                rows.append({**tags, "dataset_average": "" if average is None else f"{average:.3f}", **row})
                mu = mu_column(job.name)
                if mu and row["step"] == "0":  # GMPG's behaviour-cloned mu, before its first step: a finished run
                    rows.append({**rows[-1], "method": mu, "finished": True})
    with open(os.path.join(args.out, "scores.csv"), "w", newline="") as file:
        writer = csv.DictWriter(file, ["method", "dataset", "seed", "finished", "dataset_average", *EVAL_FIELDS])
        writer.writeheader()
        writer.writerows(rows)
    return rows


def dataset_averages(args: argparse.Namespace, datasets: list[str], seeds: list[int]) -> dict[str, float]:
    """Each dataset's D4RL-normalised average return, as its critics (or the runs imported with it) recorded it."""
    averages = {}
    for dataset in datasets:
        for seed in seeds:
            average = recorded_average(args, dataset, seed)
            if average is not None:
                averages[dataset] = average
    return averages


def recorded_average(args: argparse.Namespace, dataset: str, seed: int) -> float | None:
    """The average a (dataset, seed)'s critic recorded, else one of its imported runs; None before either exists."""
    folders = [Job("critic", dataset, seed).folder(args.out)]
    folders += sorted(glob.glob(os.path.join(args.out, "runs", "*", dataset, f"seed{seed}")))
    return next((a for a in map(run_dataset_average, folders) if a is not None), None)


def run_dataset_average(folder: str) -> float | None:
    """The dataset average in a finished folder's ``done.json`` (a critic's, or an imported run's), if any."""
    info = read_done(folder)
    value = None if info is None else info.get("dataset_average")
    return None if value in (None, "") else float(value)


def collect_noise_scores(args: argparse.Namespace, jobs: list[Job]) -> list[dict[str, Any]]:
    """The final score with N(0, I) noise of every policy run that has one; written to ``final_with_noise.csv``."""
    rows = []
    for job in jobs:
        info = read_done(job.folder(args.out)) if job.kind == "policy" else None
        if info is not None and NOISE_KEY in info:
            rows.append({"method": job.name, "dataset": job.dataset, "seed": job.seed, **info[NOISE_KEY]})
    with open(os.path.join(args.out, "final_with_noise.csv"), "w", newline="") as file:
        writer = csv.DictWriter(file, ["method", "dataset", "seed", "score_mean", "score_std"])
        writer.writeheader()
        writer.writerows(rows)
    return rows


def noise_table(noise: list[dict[str, Any]], methods: list[str], datasets: list[str]) -> list[str]:
    """The lines of ``scores.md``'s table of final scores with N(0, I) noise (GMPO and GMPG runs that have one)."""
    methods = [m for m in methods if any(row["method"] == m for row in noise)]
    if not methods:
        return []
    lines = ["### Final score with the paper's sampler (initial noise from N(0, I); the tables above: zero noise)", "",
             "| dataset | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]  # fmt: skip
    for dataset in datasets:
        cells = []
        for method in methods:
            values = np.array([r["score_mean"] for r in noise if r["method"] == method and r["dataset"] == dataset])
            cells.append(mean_cell(values))
        lines.append(f"| {dataset} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def run_scores(rows: list[dict[str, Any]], method: str, dataset: str, best: bool) -> dict[int, float]:
    """Each finished seed's final (last) or best evaluation of a column on a dataset. A policy run's best leaves out
    its step-0 evaluation, which scores mu (a column of its own), not the policy the run trained."""
    per_seed: dict[int, list[float]] = {}
    for row in rows:
        if row["method"] == method and row["dataset"] == dataset and row["finished"]:
            if best and mu_column(method) and str(row["step"]) == "0":
                continue
            per_seed.setdefault(int(row["seed"]), []).append(float(row["score_mean"]))
    return {seed: max(v) if best else v[-1] for seed, v in per_seed.items() if v}


def interval(values: np.ndarray) -> tuple[float, float]:
    """The 95% confidence interval of the mean over seeds (Student's t; with one seed, the value itself)."""
    from scipy import stats

    if len(values) < 2:
        return float(values[0]), float(values[0])
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return float(values.mean() - half), float(values.mean() + half)


def summary(rows: list[dict[str, Any]], method: str, dataset: str, best: bool) -> str:
    """``mean [95% interval] (n seeds)`` of the final (or best) evaluation of each finished seed."""
    return mean_cell(np.array(list(run_scores(rows, method, dataset, best).values())))


def mean_cell(values: np.ndarray) -> str:
    """A table cell: ``mean [95% interval] (n)``, ``value (1)`` for one seed, "—" for none."""
    if not len(values):
        return "—"
    if len(values) == 1:
        return f"{values[0]:.1f} (1)"
    low, high = interval(values)
    return f"{values.mean():.1f} [{low:.1f}, {high:.1f}] ({len(values)})"


def wall_table(args: argparse.Namespace, jobs: list[Job], methods: list[str], datasets: list[str]) -> list[str]:
    """The lines of ``scores.md``'s table of training time per run (minutes, evaluations left out), mean over seeds:
    a GMPO or GMPG run counts half of the critic it shares with the other algorithm's run (one third when three
    columns share it, and so on), a baseline its own training; mu is part of its GMPG run."""
    sharing = max(1, len([m for m in methods if m.split("-")[0] in ("gmpo", "gmpg")]))
    minutes: dict[tuple[str, str], list[float]] = {}
    for job in jobs:
        info = read_done(job.folder(args.out))
        if info is None or "train_s" not in info:
            continue  # not finished, or imported / finished before scores.py recorded its training time
        seconds = float(info["train_s"])
        if job.kind == "policy":
            critic = read_done(Job("critic", job.dataset, job.seed).folder(args.out)) or {}
            seconds += float(critic.get("train_s", "nan")) / sharing
        minutes.setdefault((job.name, job.dataset), []).append(seconds / 60)
    shown = [m for m in methods if any(key[0] == m for key in minutes)]
    if not shown:
        return []
    share = f"; GMPO/GMPG with 1/{sharing} of their shared critic" if any(m.startswith("gmp") for m in shown) else ""
    lines = [f"### Training time per run (minutes on this machine, evaluations left out{share})", "",
             "| dataset | " + " | ".join(shown) + " |", "|---|" + "---|" * len(shown)]  # fmt: skip
    for dataset in datasets:
        cells = [f"{np.mean(minutes[m, dataset]):.1f}" if (m, dataset) in minutes else "—" for m in shown]
        lines.append(f"| {dataset} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def failures(args: argparse.Namespace, jobs: list[Job]) -> list[str]:
    """A line per run that failed (its ``error.txt``) and has not finished since: failed runs are reported as they
    ended, not left out of the table silently."""
    lines = []
    for job in jobs:
        folder = job.folder(args.out)
        path = os.path.join(folder, "error.txt")
        if os.path.exists(path) and read_done(folder) is None:
            with open(path) as file:
                last = [line for line in file.read().splitlines() if line.strip()][-1:] or ["(empty)"]
            lines.append(f"- FAILED: {job.name} {job.dataset} seed {job.seed}: {last[0]} ({path})")
    return ["### Failed runs", "", *lines, ""] if lines else []


def write_table(
    args: argparse.Namespace,
    rows: list[dict[str, Any]],
    methods: list[str],
    datasets: list[str],
    noise: list[dict[str, Any]] | None = None,
    jobs: list[Job] | None = None,
) -> None:
    """``scores.md``: D4RL-normalised final and best scores, the mean over seeds with its 95% interval (seeds in
    brackets), the final scores with N(0, I) noise where runs have them, each column's training time per run, and
    the runs that failed."""
    averages = dataset_averages(args, datasets, args.seeds)
    cadence = f"every {args.eval_freq} steps" if args.eval_freq else f"{args.evals} evaluations per run"
    overrides = "; ".join(f"{algo}: {values}" for algo, values in args.overrides.items() if values) or "none"
    lines = [
        f"Preset {args.preset}, budget {args.budget} of its steps; overrides {overrides}; {args.eval_episodes} episodes per "
        f"evaluation, {cadence}, the last on {args.final_episodes} episodes (mu: GMPG's step 0, also on "
        f"{args.final_episodes}); every column plays the same episodes (environment seeds) for a seed. Entries: mean "
        "over seeds [95% interval, Student's t] (number of seeds).",
        "",
    ]
    for label, best in (("Final score (last evaluation)", False), ("Best evaluation (optimistic; not a final score)", True)):
        lines += [f"### {label}", "", "| dataset | data | " + " | ".join(methods) + " |",
                  "|---|---|" + "---|" * len(methods)]  # fmt: skip
        for dataset in datasets:
            data = f"{averages[dataset]:.1f}" if dataset in averages else "—"
            cells = [summary(rows, method, dataset, best) for method in methods]
            lines.append(f"| {dataset} | {data} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += noise_table(noise or [], methods, datasets)
    lines += wall_table(args, jobs or [], methods, datasets) + failures(args, jobs or [])
    lines += draw_notes(rows, datasets)
    with open(os.path.join(args.out, "scores.md"), "w") as file:
        file.write("\n".join(lines))
    print("\n".join(lines))


def draw_notes(rows: list[dict[str, Any]], datasets: list[str]) -> list[str]:
    """A line per dataset whose finished runs were trained on different draws of it (``sb3-generative-data`` rolls
    the same behaviour policies out, but the draw can differ between machines), naming each draw's runs."""
    lines = []
    for dataset in datasets:
        draws: dict[str, set[str]] = {}
        for row in rows:
            if row["dataset"] == dataset and row["finished"] and row["dataset_average"] != "":
                draws.setdefault(row["dataset_average"], set()).add(f"{row['method']} seed {row['seed']}")
        if len(draws) > 1:
            parts = [f"average {average}: {', '.join(sorted(runs))}" for average, runs in sorted(draws.items())]
            lines.append(f"Data draws of {dataset} differ between its runs: " + "; ".join(parts) + ".")
    return [*lines, ""] if lines else []


def score_matrices(rows: list[dict[str, Any]], methods: list[str], datasets: list[str], best: bool) -> dict[str, Any]:
    """Per method, the final (or best) score of each finished run as a (seeds, datasets) matrix, for the methods with
    a finished run of every seed they have on every dataset (rliable's stratified bootstrap needs full matrices)."""
    matrices = {}
    for method in methods:
        per_dataset = {d: run_scores(rows, method, d, best) for d in datasets}
        seeds = sorted({seed for values in per_dataset.values() for seed in values})
        if seeds and all(s in per_dataset[d] for d in datasets for s in seeds):
            matrices[method] = np.array([[per_dataset[d][s] for d in datasets] for s in seeds])
    return matrices


def write_statistics(args: argparse.Namespace, rows: list[dict[str, Any]], methods: list[str], datasets: list[str]) -> None:
    """``statistics.md`` and ``performance_profile.png``: the interquartile mean over datasets and seeds with 95%
    stratified-bootstrap confidence intervals (rliable, Agarwal et al. 2021), for the final and the best evaluation."""
    try:
        from rliable import library as rly
        from rliable import metrics
    except ImportError as error:  # the stats extra (pip install -e ".[stats]")
        print(f"statistics skipped: rliable is not installed ({error})")
        return
    lines = ["Interquartile mean of D4RL-normalised scores over datasets and seeds, 95% stratified-bootstrap "
             f"confidence intervals (rliable, {args.bootstrap} resamples); datasets: {', '.join(datasets)}.", "",
             "| method | runs | final (last evaluation) | best evaluation (optimistic) |", "|---|---|---|---|"]  # fmt: skip
    cells: dict[str, list[str]] = {}
    for best in (False, True):
        matrices = score_matrices(rows, methods, datasets, best)
        if not matrices:
            continue
        points, intervals = rly.get_interval_estimates(matrices, lambda m: np.array([metrics.aggregate_iqm(m)]),
                                                       reps=args.bootstrap)  # fmt: skip
        for method, matrix in matrices.items():
            low, high = intervals[method][:, 0]
            cells.setdefault(method, [str(matrix.size)]).append(f"{points[method][0]:.1f} [{low:.1f}, {high:.1f}]")
        if not best:
            plot_profile(args, matrices)
    lines += [f"| {method} | " + " | ".join(values) + " |" for method, values in cells.items() if len(values) == 3]
    lines += improvement_lines(args, score_matrices(rows, methods, datasets, best=False))
    with open(os.path.join(args.out, "statistics.md"), "w") as file:
        file.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def improvement_lines(args: argparse.Namespace, matrices: dict[str, Any]) -> list[str]:
    """The lines of ``statistics.md``'s table of rliable's probability of improvement, P(X > Y): the chance that a
    run of GMPO or GMPG (X) ends above a run of a baseline column (Y) on a dataset drawn at random, averaged over
    datasets (the Mann-Whitney statistic per dataset), with 95% stratified-bootstrap intervals, on final scores."""
    from rliable import library as rly
    from rliable import metrics

    policies = [m for m in matrices if m.split("-")[0] in ("gmpo", "gmpg")]
    pairs = {f"{x},{y}": (matrices[x], matrices[y]) for x in policies for y in matrices if y not in policies}
    if not pairs:
        return []
    points, intervals = rly.get_interval_estimates(pairs, metrics.probability_of_improvement, reps=args.bootstrap)
    lines = ["", "Probability of improvement P(X > Y) on final scores (rliable; 0.5: no difference), 95% "
             "stratified-bootstrap intervals:", "", "| X | Y | P(X > Y) |", "|---|---|---|"]  # fmt: skip
    for pair in pairs:
        low, high = np.ravel(intervals[pair])[:2]
        x, y = pair.split(",")
        lines.append(f"| {x} | {y} | {float(np.ravel(points[pair])[0]):.2f} [{low:.2f}, {high:.2f}] |")
    return lines


def plot_profile(args: argparse.Namespace, matrices: dict[str, Any]) -> None:
    """The performance profile of the final scores: the share of runs above each score, with bootstrap bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from rliable import library as rly
    from rliable import plot_utils

    thresholds = np.linspace(0.0, 120.0, 61)
    profiles, bands = rly.create_performance_profile(matrices, thresholds, reps=args.bootstrap)
    figure, axis = plt.subplots(figsize=(6, 4))
    plot_utils.plot_performance_profiles(profiles, thresholds, performance_profile_cis=bands, ax=axis,
                                         xlabel=r"D4RL-normalised score $\tau$")  # fmt: skip
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(os.path.join(args.out, "performance_profile.png"), dpi=100)
    plt.close(figure)


def plot_curves(args: argparse.Namespace, rows: list[dict[str, Any]], methods: list[str], datasets: list[str]) -> None:
    """``curves_<dataset>.png``: mean normalised score over seeds against steps, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    averages = dataset_averages(args, datasets, args.seeds)
    for dataset in datasets:
        fig, ax = plt.subplots(figsize=(6, 4))
        for method in methods:
            points: dict[int, list[float]] = {}
            for row in rows:
                if row["method"] == method and row["dataset"] == dataset:
                    points.setdefault(int(row["step"]), []).append(float(row["score_mean"]))
            if points:
                steps = sorted(points)
                ax.plot(steps, [np.mean(points[s]) for s in steps], marker="o", label=method)
        if dataset in averages:
            ax.axhline(averages[dataset], color="grey", linestyle="--", label="data average")
        ax.set(title=dataset, xlabel="gradient steps (policy; IQL: joint)", ylabel="D4RL-normalised score")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(os.path.join(args.out, f"curves_{dataset}.png"), dpi=100)
        plt.close(fig)


# ---------------------------------------------------------------------------------------------------- main
def plan(args: argparse.Namespace) -> tuple[list[Job], list[Job]]:
    """The critic jobs (first) and the jobs that need them (policy runs, and the baselines, which need none)."""
    critics = [Job("critic", d, s) for d in args.datasets for s in args.seeds] if args.algos else []
    runs = [Job("policy", d, s, a, m) for d in args.datasets for s in args.seeds for a in args.algos
            for m in models(args, a, d)]  # fmt: skip
    runs += [Job(kind, d, s) for kind in args.baselines for d in args.datasets for s in args.seeds]
    order = {d: i for i, d in enumerate(args.datasets)}  # a dataset's every column before the next dataset's
    return critics, sorted(runs, key=lambda job: order[job.dataset])


def models(args: argparse.Namespace, algo: str, dataset: str) -> list[str]:
    """The generative models of an algorithm's runs: ``--models``, else the one its YAML entry names."""
    if args.models:
        return list(args.models)
    return [hyperparameters(algo, dataset, 1.0, {}, args.preset)["policy_kwargs"].get("generative_model", "vpsde")]


def method_names(args: argparse.Namespace) -> list[str]:
    """The table's columns, as D4RL tables order them: d3rlpy's BC, the generative behaviour-cloned start ``mu`` (with
    GMPG runs of the model it names), IQL, ReBRAC, then each algorithm's models (in the order of ``MODELS``)."""
    policies = [f"{a}-{m}" for a in args.algos for m in MODELS if any(m in models(args, a, d) for d in args.datasets)]
    baselines = [BASELINES[kind] for kind in ("bc", "iql", "rebrac") if kind in args.baselines]
    mu = [column for column in map(mu_column, policies) if column]
    return baselines[:1] + mu + baselines[1:] + policies


def run_all(args: argparse.Namespace, jobs: list[Job]) -> None:
    if args.ray or args.ray_address:
        run_on_ray(args, jobs)
        return
    if args.jobs == 1:
        for job in jobs:
            print(run_job(job, args), flush=True)
        return
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        for line in pool.map(run_job, jobs, [args] * len(jobs)):
            print(line, flush=True)


def run_on_ray(args: argparse.Namespace, jobs: list[Job]) -> None:
    """Each job a Ray task with the CPU threads (and the GPU share) it needs, on a local Ray instance or an existing
    cluster (``--ray-address``); results go to ``--out`` as without Ray (on a cluster: a folder every node sees), and
    a job found done is skipped, so the table resumes as before."""
    import ray

    if not ray.is_initialized():  # the workers import this script's module from its folder (the same checkout)
        paths = [os.path.dirname(os.path.abspath(__file__)), os.environ.get("PYTHONPATH", "")]
        env = {"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in paths if p)}}
        if args.ray_address:
            ray.init(address=args.ray_address, runtime_env=env, log_to_driver=False)
        else:
            ray.init(num_cpus=max(args.jobs, args.threads), runtime_env=env, include_dashboard=False, log_to_driver=False)
    gpus = args.gpu_share if str(args.device).startswith("cuda") else 0
    task = ray.remote(num_cpus=args.threads, num_gpus=gpus)(run_job)
    pending = [task.remote(job, args) for job in jobs]
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        print(ray.get(done[0]), flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algos", nargs="*", default=["gmpo", "gmpg"], choices=["gmpo", "gmpg"])
    parser.add_argument("--preset", default="paper", choices=sorted(PRESETS),
                        help="paper: the paper's per-task values; cpu: one recipe for a 2-core CPU")  # fmt: skip
    parser.add_argument("--models", nargs="+", default=None, choices=MODELS,
                        help="generative models to run (default: the paper preset all three, cpu its YAML's)")  # fmt: skip
    parser.add_argument("--datasets", nargs="+", default=None, choices=DATASETS + MAZE_DATASETS,
                        help="default: all nine (paper), the eight that can be made locally (cpu)")  # fmt: skip
    parser.add_argument("--baselines", nargs="*", default=list(BASELINES), choices=list(BASELINES),
                        help="d3rlpy's baselines beside the policies (default: all three)")  # fmt: skip
    for kind in BASELINES:
        parser.add_argument(f"--{kind}-steps", type=int, default=None,
                            help=f"d3rlpy {kind.upper()}'s steps (default: the critic's)")  # fmt: skip
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--budget", type=float, default=1.0, help="factor on every step count of the YAML")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override for both algorithms")
    parser.add_argument("--gmpo-set", nargs="*", default=[], metavar="KEY=VALUE", help="override for GMPO only")
    parser.add_argument("--gmpg-set", nargs="*", default=[], metavar="KEY=VALUE", help="override for GMPG only")
    parser.add_argument("--evals", type=int, default=5, help="evaluations per run, evenly spaced")
    parser.add_argument("--eval-freq", type=int, default=None, help="evaluate every N steps instead (and at the end)")
    parser.add_argument("--eval-episodes", type=int, default=10, help="episodes of each evaluation before the last")
    parser.add_argument("--final-episodes", type=int, default=20,
                        help="episodes of the final evaluation (and of mu's, and the N(0, I)-noise score)")  # fmt: skip
    parser.add_argument("--no-reference", dest="no_reference", action="store_true", help="skip d3rlpy's baselines")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time, each in its own process")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per job")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="benchmarks/out/scores")
    parser.add_argument("--report-only", action="store_true", help="rebuild the table and plots from what is there")
    parser.add_argument(
        "--import-runs",
        default=None,
        metavar="SCORES_CSV",
        help="take the finished runs of an earlier scores.csv (another machine's) as done",
    )
    parser.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples of the confidence intervals")
    parser.add_argument("--ray", action="store_true", help="run each job as a Ray task on a local Ray instance")
    parser.add_argument("--ray-address", default=None, help="run the jobs on this existing Ray cluster ('auto', ...)")
    parser.add_argument("--gpu-share", type=float, default=0.25, help="GPU fraction a Ray task asks for on CUDA")
    args = parser.parse_args(argv)
    for kind in BASELINES:
        steps = getattr(args, f"{kind}_steps")
        if steps is not None and steps < 1:
            parser.error(f"--{kind}-steps must be at least 1, got {steps}")
    for name in ("eval_episodes", "final_episodes"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.no_reference:
        args.baselines = []
    if args.models is None and args.preset == "paper":
        args.models = list(MODELS)
    if args.datasets is None:
        args.datasets = list(DATASETS if args.preset == "paper" else LOCAL_DATASETS)

    def pairs(items: list[str]) -> dict[str, Any]:
        return {k: parse_value(v) for k, v in (item.split("=", 1) for item in items)}

    shared = pairs(args.set)
    args.overrides = {"gmpo": {**shared, **pairs(args.gmpo_set)}, "gmpg": {**shared, **pairs(args.gmpg_set)}}
    return args


def check_overrides(overrides: dict[str, dict[str, Any]]) -> None:
    """Refuse an override that is not a constructor argument of its algorithm before any run starts."""
    import inspect

    from sb3_generative import GMPG, GMPO

    for algo, cls in (("gmpo", GMPO), ("gmpg", GMPG)):
        unknown = sorted(set(overrides[algo]) - set(inspect.signature(cls.__init__).parameters) - {"n_timesteps"})
        if unknown:
            raise SystemExit(f"{', '.join(unknown)}: not an argument of {cls.__name__} (use --gmpo-set / --gmpg-set)")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    check_overrides(args.overrides)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "command.txt"), "a") as file:
        file.write("python benchmarks/scores.py " + shlex.join(sys.argv[1:] if argv is None else argv) + "\n")
    critics, runs = plan(args)
    if args.import_runs:
        import_runs(args, runs, args.import_runs)
    if not args.report_only:
        run_all(args, critics)
        run_all(args, runs)
    methods = method_names(args)
    rows = collect(args, runs)
    write_table(args, rows, methods, args.datasets, collect_noise_scores(args, runs), critics + runs)
    plot_curves(args, rows, methods, args.datasets)
    write_statistics(args, rows, methods, args.datasets)


if __name__ == "__main__":
    main()
