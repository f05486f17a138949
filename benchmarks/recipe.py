"""Finding the CPU recipe (issue: scores): what keeps GMPG on the data, GMPO's effective sample size per beta, and
whether an exponential moving average (EMA) of the policy's weights steadies the scores.

Three commands, all on one dataset of ``sb3-generative-data d4rl-style`` (under ``MINARI_DATASETS_PATH``):

    # the shared IQL critic (or --critic: one scores.py trained) and a behaviour-cloned mu, each saved, mu scored
    python benchmarks/recipe.py prepare --dataset hopper-medium --out benchmarks/out/recipe/hopper-medium
    # GMPG from that mu and critic, one variant; evaluated every --eval-every steps (and its EMA if --ema)
    python benchmarks/recipe.py gmpg --dataset hopper-medium --out benchmarks/out/recipe/hopper-medium \\
        --beta 3 --steps 150 --eval-every 50 --name b3_clip
    # GMPO's advantage weights exp(beta A) on the critic: clamped share and effective sample size per beta
    python benchmarks/recipe.py ess --dataset hopper-medium --out benchmarks/out/recipe/hopper-medium
    # the spread of Q over mu's actions (what GMPG's q_scale="auto" divides Q by) and the critic's scale
    python benchmarks/recipe.py spread --dataset hopper-medium --out benchmarks/out/recipe/hopper-medium

``gmpg`` and ``spread`` can start from a finished ``scores.py`` GMPG run instead (``--from-run <checkpoint.zip>``: its
mu and critic; pi starts again from mu). Each writes a JSON file into ``--out`` (``prepare.json``,
``gmpg_<name>.json``, ``ess.json``, ``spread_seed<seed>.json``) with the command.
"""

import argparse
import json
import os
import sys
import time
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback

from sb3_generative import GMPG, GMPO, evaluate
from sb3_generative.common.phases import means
from sb3_generative.zoo import register_d4rl_style_envs


def env_id(dataset: str) -> str:
    return f"D4RLStyle/{dataset}-v0"


def minari_id(dataset: str) -> str:
    task, level = dataset.split("-", 1)
    return f"d4rl-style/{task}/{level}-v0"


def score(model: Any, dataset: str, episodes: int, seed: int) -> float:
    """Mean D4RL-normalised score of ``episodes`` deterministic episodes played at once."""
    return float(evaluate(model, env_id(dataset), n_eval_episodes=episodes, seeds=[seed]).scores.mean())


def write(out: str, name: str, result: dict[str, Any]) -> None:
    result = {"command": "python " + " ".join(sys.argv), **result}
    with open(os.path.join(out, name), "w") as file:
        json.dump(result, file, indent=2)
    print(json.dumps(result), flush=True)


def common(args: argparse.Namespace) -> dict[str, Any]:
    return dict(
        dataset=minari_id(args.dataset),
        batch_size=args.batch_size,
        critic_batch_size=args.batch_size,
        policy_kwargs=dict(generative_model=args.model, net_arch=args.net_arch),
        seed=args.seed,
        device="cpu",
    )


# ---------------------------------------------------------------------------------------------------- prepare
def prepare(args: argparse.Namespace) -> None:
    """The critic (saved in a GMPO model, as ``scores.py`` shares it) and mu (a pretrained GMPG model)."""
    start = time.time()
    if args.critic is None:
        critic_model = GMPO("GenerativePolicy", env_id(args.dataset), critic_steps=args.critic_steps, **common(args))
        critic_model.pretrain(log_interval=args.critic_steps)
        args.critic = os.path.join(args.out, "critic.zip")
        critic_model.save(args.critic)
    critic_s = time.time() - start
    mu = GMPG(
        "GenerativePolicy",
        env_id(args.dataset),
        bc_steps=args.bc_steps,
        bc_learning_rate=args.bc_learning_rate,
        critic=args.critic,
        **common(args),
    )
    mu.pretrain(log_interval=args.bc_steps)
    mu.save(os.path.join(args.out, "mu.zip"))
    bc_s = time.time() - start - critic_s
    write(
        args.out,
        "prepare.json",
        {"critic_s": round(critic_s), "bc_s": round(bc_s), "bc_score": round(score(mu, args.dataset, args.episodes, 1000), 1)},
    )


# ---------------------------------------------------------------------------------------------------- GMPG
class Probe(BaseCallback):
    """Every ``every`` steps: the score of pi (and of the EMA of its weights), and the step's training statistics."""

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__()
        self.args, self.rows, self.start = args, [], time.time()
        self.ema: list[th.Tensor] | None = None

    def _on_training_start(self) -> None:
        self.ema = [p.detach().clone() for p in self.model.actor.parameters()] if self.args.ema else None
        if self.num_timesteps == 0:  # the start: pi = mu
            self.evaluate([p.detach() for p in self.model.actor.parameters()])

    def _on_step(self) -> bool:
        params = [p.detach() for p in self.model.actor.parameters()]
        if self.ema is not None:
            th._foreach_lerp_(self.ema, params, 1.0 - self.args.ema)
        if self.num_timesteps % self.args.eval_every == 0:
            self.evaluate(params)
        return True

    def evaluate(self, params: list[th.Tensor]) -> None:
        """Score pi (and its EMA) and add a row with the training statistics since the last one."""
        stats = {k: round(float(v), 4) for k, v in means(self.model._train_stats).items()}  # since the last log
        row = {
            "step": self.num_timesteps,
            "score": round(score(self.model, self.args.dataset, self.args.episodes, 1000), 1),
        }
        if self.ema is not None:
            saved = [p.clone() for p in params]
            th._foreach_copy_(params, self.ema)
            row["ema_score"] = round(score(self.model, self.args.dataset, self.args.episodes, 1000), 1)
            th._foreach_copy_(params, saved)
        self.rows.append({**row, **stats})
        self.write()

    def write(self) -> None:
        """The evaluations so far (a stopped run keeps them)."""
        result = {"wall_s": round(time.time() - self.start), "evaluations": self.rows}
        if getattr(self.model, "q_scale_value", None) is not None:  # what q_scale="auto" measured
            result["q_scale_value"] = round(self.model.q_scale_value, 4)
        write(self.args.out, f"gmpg_{self.args.name}.json", result)


def gmpg(args: argparse.Namespace) -> None:
    """One GMPG variant from the prepared mu and critic (or a finished run's, with ``--from-run``)."""
    model = GMPG.load(
        args.from_run or os.path.join(args.out, "mu.zip"),
        device="cpu",
        dataset=minari_id(args.dataset),
        beta=args.beta,
        learning_rate=args.learning_rate,
        clip_q_actions=not args.no_clip,
        kl_per_dimension=not args.kl_total,
        kl_batch_size=args.kl_batch_size,
        q_scale=None if args.q_scale == "none" else args.q_scale if args.q_scale == "auto" else float(args.q_scale),
        q_scale_value=None,
        batch_size=args.batch_size,
        seed=args.seed,
    )
    if args.from_run:  # pi back to the run's mu, with a fresh optimizer and step count
        model.actor.load_state_dict(model.policy.reference.state_dict())
        model.policy.optimizer = model.policy.make_optimizer(model.actor.parameters(), args.learning_rate)
        model.num_timesteps = model._n_updates = 0
    if args.critic:  # another critic for the same mu
        model.load_critic(args.critic)
    probe = Probe(args)
    model.learn(args.steps, callback=probe, log_interval=args.eval_every, reset_num_timesteps=False)
    probe.write()


# ---------------------------------------------------------------------------------------------------- GMPO's ESS
def ess(args: argparse.Namespace) -> None:
    """GMPO's weights exp(beta A(s, a)) on 8 batches of the data: the share at the clamp and the effective sample
    size (sum w)^2 / sum w^2 per batch of ``--batch-size``, for each beta."""
    model = GMPO("GenerativePolicy", env_id(args.dataset), critic=args.critic or os.path.join(args.out, "critic.zip"),
                 **common(args))  # fmt: skip
    rows = []
    for beta in args.betas:
        ess_values, clamped = [], []
        for _ in range(8):
            batch = model.replay_buffer.sample(args.batch_size)
            obs = model.policy.normalize_obs(batch.observations)
            weight = th.exp(beta * model.critic.advantage(obs, batch.actions))
            clamped.append(float((weight > args.weight_clamp).float().mean()))
            weight = weight.clamp(max=args.weight_clamp)
            ess_values.append(float(weight.sum() ** 2 / (weight**2).sum()))
        rows.append({"beta": beta, "ess": round(float(np.mean(ess_values)), 1), "clamped": round(float(np.mean(clamped)), 4)})
        print(rows[-1], flush=True)
    write(
        args.out,
        "ess.json",
        {"batch_size": args.batch_size, "weight_clamp": args.weight_clamp, "rows": rows, "critic": critic_scale(model)},
    )


# ---------------------------------------------------------------------------------------------------- Q's spread
def spread(args: argparse.Namespace) -> None:
    """What GMPG's ``q_scale="auto"`` divides Q by, on a GMPG model's mu and critic (``--from-run``, else the
    prepared mu): the mean over 512 data states of the standard deviation of Q over 32 samples of mu each, beside the
    critic's scale on the data."""
    path = args.from_run or os.path.join(args.out, "mu.zip")
    model = GMPG.load(path, device="cpu", dataset=minari_id(args.dataset), seed=args.seed)
    th.manual_seed(args.seed)
    value = model._measure_q_scale(n_states=512, n_actions=32)
    name = f"spread_seed{args.seed}.json"
    write(args.out, name, {"q_spread_under_mu": round(value, 4), "reward_scale": model.reward_scale, **critic_scale(model)})


def critic_scale(model: GMPO | GMPG, n: int = 4096) -> dict[str, float]:
    """The scale GMPG's beta multiplies, on the data: Q, the spread of the advantage, and the critic's action
    gradient (RMS per dimension); with mu's spread sigma, pi's optimum shifts an action by about
    beta |dQ/da| sigma^2 d ln 2 (RESULTS.md, "beta sets the tilt")."""
    batch = model.replay_buffer.sample(n)
    obs = model.policy.normalize_obs(batch.observations)
    actions = batch.actions.clone().requires_grad_(True)
    q_value = model.critic.q_value(obs, actions)
    (gradient,) = th.autograd.grad(q_value.sum(), actions)
    advantage = model.critic.advantage(obs, batch.actions)
    return {
        "q_mean": round(float(q_value.mean()), 2),
        "advantage_std": round(float(advantage.std()), 3),
        "dq_da_rms": round(float(gradient.pow(2).mean().sqrt()), 3),
        "action_std": round(float(batch.actions.std(0).mean()), 3),
        "abs_action_mean": round(float(batch.actions.abs().mean()), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["prepare", "gmpg", "ess", "spread"])
    parser.add_argument("--dataset", default="hopper-medium")
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="gvp")
    parser.add_argument("--net-arch", type=int, nargs="+", default=[256, 256])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--critic-steps", type=int, default=30_000)
    critic_help = "a saved model whose critic is used (prepare: instead of training one; gmpg: instead of mu's)"
    parser.add_argument("--critic", default=None, help=critic_help)
    parser.add_argument("--bc-steps", type=int, default=20_000)
    parser.add_argument("--bc-learning-rate", type=float, default=1e-3)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--beta", type=float, default=3.0)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--no-clip", action="store_true", help="Q on the raw sample (the paper's)")
    parser.add_argument("--kl-total", action="store_true", help="the KL in bits for the whole action, not per dimension")
    parser.add_argument("--kl-batch-size", type=int, default=64)
    parser.add_argument("--q-scale", default="none", help="GMPG's q_scale: none (raw Q), auto, or a number")
    parser.add_argument("--from-run", default=None, help="gmpg: start from this GMPG checkpoint's mu and critic")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--ema", type=float, default=0.0, help="EMA decay of pi's weights (0: none)")
    parser.add_argument("--name", default="run")
    parser.add_argument("--betas", type=float, nargs="+", default=[0.5, 1.0, 3.0, 10.0, 16.0])
    parser.add_argument("--weight-clamp", type=float, default=100.0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    th.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    register_d4rl_style_envs()
    {"prepare": prepare, "gmpg": gmpg, "ess": ess, "spread": spread}[args.command](args)


if __name__ == "__main__":
    main()
