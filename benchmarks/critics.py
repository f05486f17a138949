"""Which critic can GMPG follow (issue: GMPG that never falls below its start)? GMPG from one behaviour-cloned mu with
different critics, and whether a rise of Q under pi predicts a rise of the return.

Critics, all on the same dataset and seed:

- ``iql``: the recipe's IQL critic (``recipe.py prepare`` trains it with mu);
- ``iql-ln``: the same IQL critic with layer normalisation in its hidden layers (``critic_layer_norm``);
- ``rebrac``: d3rlpy's ReBRAC critic, trained against its own deterministic actor with a BC penalty in the target
  (the baseline table's run, ``scores.py --baselines rebrac``, its final ``.d3`` checkpoint), copied in through
  ``critic=`` (``critics/d3rlpy_q.py``).

Commands (the folder of ``recipe.py prepare``: ``mu.zip`` and ``critic.zip``):

    python benchmarks/critics.py critic-ln --dataset hopper-medium --out benchmarks/out/critics/hopper-medium-s0
    python benchmarks/critics.py gmpg --dataset hopper-medium --out benchmarks/out/critics/hopper-medium-s0 \\
        --critic rebrac --rebrac-checkpoint benchmarks/out/table_v3/runs/rebrac-d3rlpy/hopper-medium/seed0/checkpoint_37000.d3
    python benchmarks/critics.py report --out benchmarks/out/critics

Every ``--eval-every`` steps ``gmpg`` scores pi (``--episodes`` deterministic episodes) and measures, on 1024 fixed
data states and fixed noise, the critic's mean Q of pi's actions in units of Q's spread under mu (``q_scale``): the
gain GMPG optimises. ``report`` tabulates, per run, mu's score, the final score, the Q gain, the KL, and the rank
correlation between the Q gain and the score gain over the evaluations.
"""

import argparse
import glob
import json
import os
import sys
import time
from typing import Any

import numpy as np
import torch as th
from scipy.stats import spearmanr
from stable_baselines3.common.callbacks import BaseCallback

from sb3_generative import GMPG, GMPO
from sb3_generative.common.phases import means
from sb3_generative.zoo import register_d4rl_style_envs

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from recipe import env_id, minari_id, score, write  # a sibling benchmark script
from scores import hyperparameters


def critic_ln(args: argparse.Namespace) -> None:
    """The recipe's IQL critic with layer normalisation, saved in a GMPO model as ``critic_ln.zip``."""
    params = hyperparameters("gmpo", args.dataset, 1.0, {}, "cpu")
    start = time.time()
    model = GMPO(
        "GenerativePolicy", env_id(args.dataset), dataset=minari_id(args.dataset), seed=args.seed, device="cpu",
        critic_steps=params["critic_steps"], critic_batch_size=params["critic_batch_size"],
        critic_learning_rate=params["critic_learning_rate"], expectile=params["expectile"],
        policy_kwargs={**params["policy_kwargs"], "critic_layer_norm": True},
    )  # fmt: skip
    model.pretrain(log_interval=params["critic_steps"])
    model.save(os.path.join(args.out, "critic_ln.zip"))
    write(args.out, "critic_ln.json", {"critic_s": round(time.time() - start)})


def build(args: argparse.Namespace) -> GMPG:
    """GMPG at the CPU recipe with the chosen critic, pi and mu copied from the prepared ``mu.zip``."""
    params = hyperparameters("gmpg", args.dataset, 1.0, {}, "cpu")
    params.pop("n_timesteps")
    policy_kwargs = dict(params.pop("policy_kwargs"))
    if args.critic == "iql-ln":
        policy_kwargs["critic_layer_norm"] = True
    critic: Any = os.path.join(args.out, {"iql": "critic.zip", "iql-ln": "critic_ln.zip"}.get(args.critic, ""))
    if args.critic == "rebrac":
        import d3rlpy

        critic = d3rlpy.load_learnable(args.rebrac_checkpoint, device="cpu:0")  # a file this project's table made
        policy_kwargs.update(critic_net_arch=[256, 256, 256], critic_layer_norm=True)
    params.update(dataset=minari_id(args.dataset), seed=args.seed, device="cpu", policy_kwargs=policy_kwargs)
    model = GMPG(params.pop("policy"), env_id(args.dataset), critic=critic, **params)
    mu = GMPG.load(os.path.join(args.out, "mu.zip"), device="cpu")
    model.actor.load_state_dict(mu.actor.state_dict())
    model.policy.reference.load_state_dict(mu.policy.reference.state_dict())
    model.bc_steps_done = model.bc_steps
    return model


class QProbe(BaseCallback):
    """Every ``every`` steps (and at the start): pi's score and the critic's mean Q of pi's actions on fixed states."""

    def __init__(self, args: argparse.Namespace, states: th.Tensor, noise: th.Tensor) -> None:
        super().__init__()
        self.args, self.states, self.noise = args, states, noise
        self.rows: list[dict[str, Any]] = []
        self.start = time.time()

    def _on_training_start(self) -> None:
        if not self.rows:
            self.evaluate()

    def _on_step(self) -> bool:
        if self.num_timesteps % self.args.eval_every == 0:
            self.evaluate()
        return True

    def evaluate(self) -> None:
        model = self.model
        with th.no_grad():
            actions = model.actor.sample(self.states, self.noise, model.solve_config).clamp(-1.0, 1.0)
            q_pi = float(model.critic.q_value(self.states, actions).mean())
        stats = {k: round(float(v), 4) for k, v in means(model._train_stats).items()}
        row = {
            "step": self.num_timesteps,
            "score": round(score(model, self.args.dataset, self.args.episodes, 1000), 1),
            "q_pi": round(q_pi, 4),
            "q_scale_value": model.q_scale_value,  # measured when the policy phase starts (q_scale="auto")
        }
        self.rows.append({**row, **stats})
        result = {"critic": self.args.critic, "wall_s": round(time.time() - self.start), "evaluations": self.rows}
        write(self.args.out, f"gmpg_{self.args.critic}_s{self.args.seed}.json", result)


def gmpg(args: argparse.Namespace) -> None:
    """One GMPG run from the prepared mu with the chosen critic."""
    th.manual_seed(args.seed)
    model = build(args)
    buffer = model._require_dataset()
    generator = th.Generator().manual_seed(1000 + args.seed)
    index = th.randint(0, buffer.size, (1024,), generator=generator)
    states = model.policy.normalize_obs(buffer.observations[index])
    noise = th.randn(1024, model.actor.action_dim, generator=generator)
    probe = QProbe(args, states, noise)
    model.learn(args.steps, callback=probe, log_interval=args.eval_every)
    if probe.rows[-1]["step"] != model.num_timesteps:
        probe.evaluate()


def report(args: argparse.Namespace) -> None:
    """One row per run: mu's and the final score, the Q gain in spread units, the KL, and the rank correlation of the
    Q gain with the score gain over the evaluations."""
    lines = [
        "| run | critic | mu | final | best | Q gain (spreads) | KL (bits) | Spearman(dQ, dscore) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for path in sorted(glob.glob(os.path.join(args.out, "*", "gmpg_*.json"))):
        with open(path) as file:
            rows = json.load(file)["evaluations"]
        scores = np.array([r["score"] for r in rows])
        gains = np.array([r["q_pi"] for r in rows])
        gains = (gains - gains[0]) / rows[-1]["q_scale_value"]  # in units of Q's spread under mu
        kl = rows[-1].get("kl", float("nan"))
        rho = spearmanr(gains[1:], scores[1:] - scores[0]).statistic if len(rows) > 3 else float("nan")
        run = os.path.basename(os.path.dirname(path))
        critic, _, seed = os.path.basename(path)[len("gmpg_") : -len(".json")].rpartition("_s")
        lines.append(
            f"| {run} | {critic} (GMPG seed {seed}) | {scores[0]:.1f} | {scores[-1]:.1f} | {scores.max():.1f} "
            f"| {gains[-1]:.2f} | {kl:.2f} | {rho:.2f} |"
        )
    text = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "critics.md"), "w") as file:
        file.write(text)
    print(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["critic-ln", "gmpg", "report"])
    parser.add_argument("--dataset", default="hopper-medium")
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=0, help="seed of the run (mu and the critics come from --out)")
    parser.add_argument("--critic", choices=["iql", "iql-ln", "rebrac"], default="iql")
    parser.add_argument("--rebrac-checkpoint", default=None, help="d3rlpy ReBRAC (.d3), same dataset and seed")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--eval-every", type=int, default=25)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    th.set_num_threads(args.threads)
    register_d4rl_style_envs()
    {"critic-ln": critic_ln, "gmpg": gmpg, "report": report}[args.command](args)


if __name__ == "__main__":
    main()
