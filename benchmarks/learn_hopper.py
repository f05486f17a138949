"""It learns: GMPO (and GMPG from its critic) on d4rl-style/hopper/medium-v0 with a reduced CPU budget.

Needs the dataset made by ``sb3-generative-data d4rl-style --root DIR --tasks hopper --levels medium`` and
``MINARI_DATASETS_PATH=DIR``. Writes ``<out>/<algo>_results.json``, the evaluations and the trained model;
the critic of the GMPO run is saved with its model and reused by ``--algo gmpg --critic <gmpo zip>``.

    python benchmarks/learn_hopper.py --algo gmpo --out benchmarks/out/hopper
"""

import argparse
import json
import os
import platform
import time

import numpy as np
import torch as th
from stable_baselines3.common.callbacks import EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

import sb3_generative
from sb3_generative import GMPO, SolveConfig


def build(args: argparse.Namespace) -> GMPO:
    common = dict(
        dataset=args.dataset,
        batch_size=args.batch_size,
        critic_steps=args.critic_steps,
        critic_batch_size=args.critic_batch_size,
        policy_kwargs=dict(generative_model=args.generative_model, net_arch=args.net_arch),
        seed=args.seed,
        verbose=1,
        device="cpu",
        critic=args.critic,
    )
    if args.algo == "gmpo":
        return GMPO(
            "GenerativePolicy",
            args.env,
            beta=args.beta,
            weight_clamp=args.weight_clamp,
            learning_rate=args.learning_rate,
            **common,
        )
    from sb3_generative import GMPG  # the GMPG issue

    model = GMPG(
        "GenerativePolicy",
        args.env,
        beta=args.beta,
        bc_steps=0 if args.base_model else args.bc_steps,
        bc_learning_rate=args.bc_learning_rate,
        learning_rate=args.learning_rate,
        n_gradient_steps=args.n_gradient_steps,
        gradient_solver=args.gradient_solver,
        grid_power=args.grid_power,
        grid_jitter=args.grid_jitter,
        kl_batch_size=args.kl_batch_size,
        **common,
    )
    if args.base_model:  # pi and mu both start from the behaviour model of an earlier GMPG run
        behaviour = GMPG.load(args.base_model, device="cpu").policy.reference.state_dict()
        model.actor.load_state_dict(behaviour)
        model.policy.reference.load_state_dict(behaviour)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", choices=["gmpo", "gmpg"], default="gmpo")
    parser.add_argument("--env", default="Hopper-v4")
    parser.add_argument("--dataset", default="d4rl-style/hopper/medium-v0")
    parser.add_argument("--generative-model", default="gvp")
    parser.add_argument("--net-arch", type=int, nargs="+", default=[256, 256])
    parser.add_argument("--steps", type=int, default=30_000, help="policy gradient steps")
    parser.add_argument("--critic-steps", type=int, default=100_000)
    parser.add_argument("--critic-batch-size", type=int, default=256)
    parser.add_argument("--bc-steps", type=int, default=30_000)
    parser.add_argument("--bc-learning-rate", type=float, default=3e-4)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--beta", type=float, default=16.0)
    parser.add_argument("--weight-clamp", type=float, default=1000.0)
    parser.add_argument("--n-gradient-steps", type=int, default=8, help="GMPG solver steps")
    parser.add_argument("--gradient-solver", default="rk4", help="GMPG solver (the reference: euler, 1000 steps)")
    parser.add_argument("--grid-power", type=float, default=2.0, help="GMPG grid exponent (1: uniform)")
    parser.add_argument("--grid-jitter", type=float, default=1.0, help="GMPG grid jitter (0: fixed grid)")
    parser.add_argument("--kl-batch-size", type=int, default=256, help="GMPG states per update with a KL estimate")
    parser.add_argument("--base-model", default=None, help="saved GMPG model whose behaviour model mu is reused")
    parser.add_argument("--critic", default=None, help="saved model whose critic is reused")
    parser.add_argument("--eval-freq", type=int, default=5_000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--log-interval", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch CPU threads")
    parser.add_argument("--out", default="benchmarks/out/hopper")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    th.set_num_threads(args.threads)

    start = time.time()
    model = build(args)
    eval_env = make_vec_env(args.env, n_envs=args.eval_episodes, seed=1000 + args.seed)
    callback = EvalCallback(
        eval_env,
        eval_freq=args.eval_freq,
        n_eval_episodes=args.eval_episodes,
        log_path=os.path.join(args.out, args.algo),
        deterministic=True,
        verbose=1,
    )
    start_score = None
    if args.algo == "gmpg":  # score the behaviour-cloned model before any policy-gradient step
        model.pretrain()
        returns, _ = evaluate_policy(model, eval_env, n_eval_episodes=args.eval_episodes, return_episode_rewards=True)
        start_score = round(float(model.normalized_score(returns).mean()), 1)
        print(f"behaviour-cloned model: normalised score {start_score}", flush=True)
    model.learn(args.steps, callback=callback, log_interval=args.log_interval, reset_num_timesteps=args.algo != "gmpg")
    model.save(os.path.join(args.out, f"{args.algo}_hopper"))
    evals = np.load(os.path.join(args.out, args.algo, "evaluations.npz"))
    scores = model.normalized_score(evals["results"]).mean(axis=1)
    result = {
        "command": "python benchmarks/learn_hopper.py "
        + " ".join(
            f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in vars(args).items()
            if v is not None
        ),
        "algo": args.algo,
        "timesteps": evals["timesteps"].tolist(),
        "normalized_scores": [round(float(s), 1) for s in scores],
        "final_score": round(float(scores[-1]), 1),
        "score_before_policy_phase": start_score,
        "best_score": round(float(scores.max()), 1),
        "dataset_average": round(float(model.normalized_score(gym_returns(model)).mean()), 1),
        "wall_time_s": round(time.time() - start, 1),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {th.__version__}",
        "sb3_generative": sb3_generative.__version__,
    }
    if args.algo == "gmpg":
        result["kl_check"] = kl_check(model)  # type: ignore[arg-type]
    with open(os.path.join(args.out, f"{args.algo}_results.json"), "w") as file:
        json.dump(result, file, indent=2)
    print(json.dumps(result, indent=2))


def kl_check(model: "sb3_generative.GMPG", n_states: int = 256) -> dict[str, float]:
    """KL(pi || mu) in bits per dimension at the end of training, estimated on the training grid and on a
    1000-point Euler grid (close to exact): a policy that games a coarse likelihood shows a gap here."""
    obs = model.policy.normalize_obs(model.replay_buffer.sample(n_states).observations)  # type: ignore[union-attr]
    noise, bits = th.randn(n_states, model.actor.action_dim), model.actor.action_dim * np.log(2.0)
    grids = {
        "training grid": (model.gradient_solver, model.n_gradient_steps, model.grid_power),
        "euler 1000": ("euler", 1000, 1.0),
    }
    result = {}
    with th.no_grad():
        for label, (solver, steps, power) in grids.items():
            config = SolveConfig(steps, solver, grid_power=power)
            actions, log_pi = model.actor.sample_with_log_prob(obs, noise, config)
            log_mu = model.policy.reference.log_prob(actions, obs, config)
            result[label] = round(float(((log_pi - log_mu) / bits).mean()), 4)
    return result


def gym_returns(model: GMPO) -> np.ndarray:
    """Episode returns of the dataset itself, unscaled."""
    from sb3_generative.common.datasets import load_offline_data

    return load_offline_data(model.dataset_source).episode_returns()


if __name__ == "__main__":
    main()
