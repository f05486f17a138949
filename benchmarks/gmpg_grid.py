"""GMPG's default grid against a 1000-point Euler grid, and the cost of one GMPG update against one GMPO update.

A behaviour model is cloned (flow matching) on a dataset; its log-likelihood of held-out dataset actions and of
its own samples is computed on the default grid (4 RK4 steps), on coarser Euler grids, and on the 1000-point
Euler grid the reference code uses. Then one GMPG update (default settings) and one GMPO update are timed at
the same batch, in the same process. Writes a JSON file and prints it.

    python benchmarks/gmpg_grid.py --dataset d4rl-style/hopper/medium-v0 --out benchmarks/out/gmpg_grid.json
"""

import argparse
import json
import os
import time

import torch as th

from sb3_generative import GMPG, GMPO


def time_updates(model: GMPO | GMPG, batch_size: int, repeats: int) -> float:
    """Seconds per policy update (after one warm-up update)."""
    model.train(1, batch_size)
    start = time.perf_counter()
    model.train(repeats, batch_size)
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="d4rl-style/hopper/medium-v0")
    parser.add_argument("--generative-models", nargs="+", default=["gvp", "vpsde", "icfm"])
    parser.add_argument("--bc-steps", type=int, default=5000)
    parser.add_argument("--net-arch", type=int, nargs="+", default=[256, 256])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--eval-batch", type=int, default=512)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", default="benchmarks/out/gmpg_grid.json")
    args = parser.parse_args()
    th.set_num_threads(args.threads)
    results: dict = {
        "command": "python benchmarks/gmpg_grid.py "
        + " ".join(
            f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in vars(args).items()
        )
    }
    for name in args.generative_models:
        model = GMPG(
            "GenerativePolicy",
            None,
            dataset=args.dataset,
            batch_size=args.batch_size,
            bc_steps=args.bc_steps,
            bc_learning_rate=1e-3,
            critic_steps=0,
            seed=0,
            device="cpu",
            policy_kwargs=dict(generative_model=name, net_arch=args.net_arch),
        )
        model.learn(0)
        batch = model.replay_buffer.sample(args.eval_batch)
        obs = model.policy.normalize_obs(batch.observations)
        own = model.actor.sample(obs, n_steps=200, solver="rk4")
        rows = {}
        for label, solver, steps in [
            ("rk4-4 (default)", "rk4", 4),
            ("rk4-8", "rk4", 8),
            ("rk4-16", "rk4", 16),
            ("euler-10", "euler", 10),
            ("euler-31", "euler", 31),
            ("euler-1000 (reference)", "euler", 1000),
        ]:
            with th.no_grad():
                data_lp = model.actor.log_prob(batch.actions, obs, n_steps=steps, solver=solver)
                own_lp = model.actor.log_prob(own, obs, n_steps=steps, solver=solver)
            rows[label] = {
                "log_prob_data": round(data_lp.mean().item(), 3),
                "log_prob_own_samples": round(own_lp.mean().item(), 3),
            }
        ref = rows["euler-1000 (reference)"]
        for row in rows.values():
            row["abs_diff_data_vs_1000"] = round(abs(row["log_prob_data"] - ref["log_prob_data"]), 3)
        gmpo = GMPO(
            "GenerativePolicy",
            None,
            dataset=args.dataset,
            batch_size=args.batch_size,
            critic_steps=0,
            device="cpu",
            policy_kwargs=dict(generative_model=name, net_arch=args.net_arch),
        )
        gmpo.learn(0)
        t_gmpo, t_gmpg = time_updates(gmpo, args.batch_size, 20), time_updates(model, args.batch_size, 3)
        model.divergence = "hutchinson"
        t_hutch = time_updates(model, args.batch_size, 3)
        results[name] = {
            "log_likelihood": rows,
            "gmpo_update_ms": round(1000 * t_gmpo, 1),
            "gmpg_update_ms_exact": round(1000 * t_gmpg, 1),
            "gmpg_update_ms_hutchinson": round(1000 * t_hutch, 1),
            "ratio_exact": round(t_gmpg / t_gmpo, 1),
            "ratio_hutchinson": round(t_hutch / t_gmpo, 1),
        }
        print(json.dumps({name: results[name]}, indent=1), flush=True)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as file:
        json.dump(results, file, indent=2)


if __name__ == "__main__":
    main()
