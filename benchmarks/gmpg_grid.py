"""GMPG's default grid against the reference's 1000-point Euler grid: log-likelihoods, KL estimates and gradients.

For each model (a saved GMPG model, or a behaviour model cloned here for each ``--generative-models`` entry), on
the same states and noise:

- the mean log-likelihood of dataset actions and of mu's own samples under mu, per grid;
- the KL estimate of GMPG's loss, ``(log pi(a) - log mu(a)) / (d ln 2)`` at pi's samples, per grid. A trained pi
  has moved its samples away from mu's, to where a coarse grid may err; a grid that is safe for GMPG gives there
  the same KL as the 1000-point grid;
- the cosine between (and the norm ratio of) the policy gradient of GMPG's loss on each grid and on the 1000-point grid,
  for the same states and noise; beside it the cosine between the default grid's gradients on two different batches
  of states and noise, the minibatch noise that any grid error should be compared with.

Writes a JSON file and prints it.

    python benchmarks/gmpg_grid.py --models benchmarks/out/hopper_gmpg_p2_b3/gmpg_hopper.zip --out grid.json
"""

import argparse
import json
import math
import os
from typing import Any

import torch as th

from sb3_generative import GMPG, SolveConfig

#: (label, solver, steps, grid power); the last one is the reference's grid
GRIDS = [
    ("rk4-4 uniform", "rk4", 4, 1.0),
    ("rk4-8 uniform", "rk4", 8, 1.0),
    ("rk4-16 uniform", "rk4", 16, 1.0),
    ("rk4-4 power 2", "rk4", 4, 2.0),
    ("rk4-8 power 2 (default)", "rk4", 8, 2.0),
    ("rk4-16 power 2", "rk4", 16, 2.0),
    ("rk4-32 power 2", "rk4", 32, 2.0),
    ("euler-31", "euler", 31, 1.0),
    ("euler-1000 (reference)", "euler", 1000, 1.0),
]


def grid_rows(model: GMPG, obs: th.Tensor, data_actions: th.Tensor, noise: th.Tensor) -> dict[str, dict[str, float]]:
    """Log-likelihoods under mu and GMPG's KL estimate at pi's samples, per grid (no gradients)."""
    pi, mu, bits = model.actor, model.policy.reference, model.actor.action_dim * math.log(2.0)
    with th.no_grad():
        own = mu.sample(obs, noise, SolveConfig(200, "rk4"))
    rows = {}
    for label, solver, steps, power in GRIDS:
        config = SolveConfig(steps, solver, grid_power=power)
        with th.no_grad():
            actions, log_pi = pi.sample_with_log_prob(obs, noise, config)
            log_mu = mu.log_prob(actions, obs, config)
            rows[label] = {
                "log_mu_data": round(mu.log_prob(data_actions, obs, config).mean().item(), 3),
                "log_mu_own_samples": round(mu.log_prob(own, obs, config).mean().item(), 3),
                "log_pi": round(log_pi.mean().item(), 3),
                "log_mu_at_pi": round(log_mu.mean().item(), 3),
                "kl_bits_per_dim": round(((log_pi - log_mu) / bits).mean().item(), 4),
            }
    return rows


def policy_gradient(model: GMPG, obs: th.Tensor, noise: th.Tensor, solver: str, steps: int, power: float) -> th.Tensor:
    """The flattened gradient of GMPG's loss with respect to pi's parameters on a fixed grid."""
    saved = model.gradient_solver, model.n_gradient_steps, model.grid_power, model.grid_jitter, model.gradient_method
    model.gradient_solver, model.n_gradient_steps, model.grid_power, model.grid_jitter = solver, steps, power, 0.0
    model.gradient_method = "checkpoint" if steps > 100 else "backprop"  # memory of the long grid
    model.actor.zero_grad(set_to_none=True)
    model.critic.requires_grad_(False)
    loss, _ = model.policy_loss(obs, noise)
    loss.backward()
    grad = th.cat([p.grad.flatten() for p in model.actor.parameters() if p.grad is not None])
    model.gradient_solver, model.n_gradient_steps, model.grid_power, model.grid_jitter, model.gradient_method = saved
    return grad


def behaviour_model(args: argparse.Namespace, name: str) -> GMPG:
    """A behaviour model mu cloned here; with ``--critic``, pi then takes ``--gmpg-steps`` GMPG steps away from it
    (default grid), so that its samples leave mu's."""
    model = GMPG(
        "GenerativePolicy",
        None,
        dataset=args.dataset,
        batch_size=args.batch_size,
        bc_steps=args.bc_steps,
        bc_learning_rate=1e-3,
        critic_steps=0,
        critic=args.critic,
        beta=args.beta,
        seed=0,
        device="cpu",
        policy_kwargs=dict(generative_model=name, net_arch=args.net_arch),
    )
    model.learn(args.gmpg_steps if args.critic else 0)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="d4rl-style/hopper/medium-v0")
    parser.add_argument("--models", nargs="*", default=[], help="saved GMPG models (pi and mu)")
    parser.add_argument(
        "--generative-models", nargs="*", default=[], help="clone a behaviour model of each (default, without --models: all)"
    )
    parser.add_argument("--bc-steps", type=int, default=5000)
    parser.add_argument("--critic", default=None, help="saved model whose critic moves pi away from a cloned mu")
    parser.add_argument("--gmpg-steps", type=int, default=50, help="GMPG steps of pi from a cloned mu (with --critic)")
    parser.add_argument("--beta", type=float, default=3.0, help="beta of those steps")
    parser.add_argument("--net-arch", type=int, nargs="+", default=[256, 256])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--eval-batch", type=int, default=512)
    parser.add_argument("--gradient-batch", type=int, default=64, help="states of the gradient comparison (0: none)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", default="benchmarks/out/gmpg_grid.json")
    args = parser.parse_args()
    if not args.models and not args.generative_models:  # nothing named: a behaviour model of each kind
        args.generative_models = ["gvp", "vpsde", "icfm"]
    th.set_num_threads(args.threads)
    th.manual_seed(0)
    results: dict = {
        "command": "python benchmarks/gmpg_grid.py "
        + " ".join(
            f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in vars(args).items()
        )
    }
    models = [(path, lambda path=path: GMPG.load(path, device="cpu", dataset=args.dataset)) for path in args.models]
    models += [(f"behaviour {name}", lambda name=name: behaviour_model(args, name)) for name in args.generative_models]
    for label, build in models:
        model = build()
        batch = model.replay_buffer.sample(args.eval_batch)  # type: ignore[union-attr]
        obs = model.policy.normalize_obs(batch.observations)
        noise = th.randn(args.eval_batch, model.actor.action_dim)
        entry: dict[str, Any] = {
            "path": type(model.actor.path).__name__,
            "grids": grid_rows(model, obs, batch.actions, noise),
        }
        if args.gradient_batch:
            k = args.gradient_batch
            ref = policy_gradient(model, obs[:k], noise[:k], "euler", 1000, 1.0)
            for grid_label, solver, steps, power in GRIDS[:-1]:
                grad = policy_gradient(model, obs[:k], noise[:k], solver, steps, power)
                cosine = th.nn.functional.cosine_similarity(grad, ref, dim=0).item()
                entry["grids"][grid_label]["gradient_cosine_vs_1000"] = round(cosine, 4)
                entry["grids"][grid_label]["gradient_norm_ratio_vs_1000"] = round((grad.norm() / ref.norm()).item(), 3)
            solver, steps, power = model.gradient_solver, model.n_gradient_steps, model.grid_power
            first = policy_gradient(model, obs[:k], noise[:k], solver, steps, power)
            second = policy_gradient(model, obs[k : 2 * k], noise[k : 2 * k], solver, steps, power)
            entry["gradient_cosine_between_batches"] = round(
                th.nn.functional.cosine_similarity(first, second, dim=0).item(), 4
            )
        results[label] = entry
        print(json.dumps({label: entry}, indent=1), flush=True)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as file:
        json.dump(results, file, indent=2)


if __name__ == "__main__":
    main()
