"""Training throughput on this machine: IQL critic, GMPO and GMPG updates per second, and predict latency.

Random data with hopper's sizes (11-d observations, 3-d actions); each figure is the median of several timed
windows after a warm-up. Writes JSON and prints it.

    python benchmarks/cpu_steps.py --batch-size 256 --out benchmarks/out/cpu_steps.json
"""

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch as th

from sb3_generative import GMPG, GMPO


def rate(fn: Callable[[], None], repeats: int, windows: int = 3) -> float:
    """Calls per second of ``fn``: the median over ``windows`` timed windows of ``repeats`` calls."""
    fn()
    results = []
    for _ in range(windows):
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        results.append(repeats / (time.perf_counter() - start))
    return statistics.median(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--net-arch", type=int, nargs="+", default=[256, 256])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", default="benchmarks/out/cpu_steps.json")
    args = parser.parse_args()
    th.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    n = 20_000
    data = {
        "observations": rng.normal(size=(n, 11)).astype(np.float32),
        "next_observations": rng.normal(size=(n, 11)).astype(np.float32),
        "actions": rng.uniform(-1, 1, size=(n, 3)).astype(np.float32),
        "rewards": rng.normal(size=n).astype(np.float32),
        "terminals": rng.random(n) < 0.001,
        "timeouts": (np.arange(n) % 1000) == 999,
    }
    kwargs = dict(batch_size=args.batch_size, critic_steps=0, seed=0, device="cpu", policy_kwargs=dict(net_arch=args.net_arch))
    gmpo = GMPO("GenerativePolicy", None, dataset=data, **kwargs).learn(1)
    gmpg = GMPG("GenerativePolicy", None, dataset=data, bc_steps=0, **kwargs).learn(1)
    buffer = gmpo.replay_buffer

    def critic_step() -> None:
        b = buffer.sample(args.batch_size)
        gmpo.critic.update(b.observations, b.actions, b.rewards, b.next_observations, b.dones)

    obs1 = data["observations"][0]
    results = {
        "command": "python benchmarks/cpu_steps.py "
        + " ".join(
            f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in vars(args).items()
        ),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {args.threads} torch threads, torch {th.__version__}",
        "critic_updates_per_s": round(rate(critic_step, 50), 1),
        "gmpo_updates_per_s": round(rate(lambda: gmpo.train(1, args.batch_size), 20), 1),
        "gmpg_updates_per_s": round(rate(lambda: gmpg.train(1, args.batch_size), 1), 2),
        "predict_batch1_ms": round(1000 / rate(lambda: gmpo.predict(obs1, deterministic=True), 20), 2),
    }
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as file:
        json.dump(results, file, indent=2)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
