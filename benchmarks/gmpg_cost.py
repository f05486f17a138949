"""What one GMPG update costs in GMPO updates at the same batch, as the batch grows (GMPG issue, "Cost").

For each batch size, in one process on the same data: a GMPO policy update; a GMPG update with the defaults (the KL
term on ``kl_batch_size=256`` states, the Q term on all); the part of it that any pathwise GMPG update needs, the
differentiable sample of pi on the default grid and the Q term on every state (no likelihood at all); and, for batches
up to ``--full-kl-max``, a GMPG update with the KL on every state (the paper's estimator). Medians of repeated calls,
small network ([256, 256]) by default, HalfCheetah's sizes (17-d states, 6-d actions), as in ``speed.py``.

    python benchmarks/gmpg_cost.py --threads 2 --batches 256 1024 4096 --out benchmarks/results/gmpg_cost_cpu.json
"""

import argparse
import json
import os
from typing import Any

import torch as th

from sb3_generative import GMPG, GMPO
from speed import arrays, timed, write_result  # benchmarks/speed.py, next to this file


def pathwise_q_step(model: GMPG, batch: int) -> None:
    """One optimizer step on ``-beta mean Q(s, a_theta)`` alone, a_theta pi's differentiable sample on GMPG's grid."""
    buffer = model.replay_buffer
    assert buffer is not None
    obs = model.policy.normalize_obs(buffer.sample(batch).observations)
    actions = model.actor.sample(obs, config=model.solve_config, with_grad=True)
    loss = -model.beta * model.critic.q_value(obs, actions).mean()
    model.policy.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    model.policy.optimizer.step()


def measure(batch: int, args: argparse.Namespace) -> dict[str, Any]:
    device, data = th.device(args.device), arrays()
    common = dict(dataset=data, critic_steps=0, batch_size=batch, device=device, seed=0,
                  policy_kwargs=dict(net_arch=args.net_arch))  # fmt: skip
    gmpo = GMPO("GenerativePolicy", None, beta=3.0, **common)
    gmpg = GMPG("GenerativePolicy", None, bc_steps=0, beta=3.0, **common)
    gmpo.pretrain()
    gmpg.pretrain()
    gmpg.critic.requires_grad_(False)
    gmpo_s = timed(lambda: gmpo.train(1, batch), device, args.repeats)
    row: dict[str, Any] = {"batch": batch, "gmpo_ms": round(gmpo_s * 1e3, 2)}
    cases = {
        "gmpg_default": lambda: gmpg.train(1, batch),
        "pathwise_sample_and_q_only": lambda: pathwise_q_step(gmpg, batch),
    }
    if batch <= args.full_kl_max:
        default_kl_states = gmpg.kl_batch_size

        def full_kl() -> None:
            gmpg.kl_batch_size = None
            gmpg.train(1, batch)
            gmpg.kl_batch_size = default_kl_states

        cases["gmpg_kl_on_every_state"] = full_kl
    for name, fn in cases.items():
        seconds = timed(fn, device, args.repeats)
        row[f"{name}_ms"] = round(seconds * 1e3, 1)
        row[f"{name}_in_gmpo_updates"] = round(seconds / gmpo_s, 1)
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if th.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--batches", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--net-arch", type=int, nargs="+", default=[256, 256])
    parser.add_argument("--full-kl-max", type=int, default=1024, help="largest batch timed with the KL on every state")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls at most (at least 3)")
    parser.add_argument("--out", default=None, help="JSON file for the rows")
    args = parser.parse_args()
    if min(args.batches) < 1 or args.repeats < 1 or args.threads < 1:
        parser.error(
            f"--batches, --repeats and --threads must be positive, got {args.batches}, {args.repeats}, {args.threads}"
        )
    th.set_num_threads(args.threads)
    rows = [measure(batch, args) for batch in args.batches]
    write_result("gmpg_cost.py", args, rows)


if __name__ == "__main__":
    main()
