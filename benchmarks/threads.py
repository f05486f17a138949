"""Torch threads on a small CPU: steps per second of the IQL critic update and the GMPO update with 1 and 2 threads,
on an idle machine and beside one busy process (a pure-Python spin loop on another core), at three sizes: the demo's
networks and batch, the CPU recipe's ([512, 256, 128] actor, batch 256) and the paper's (batch 4096).

    OMP_NUM_THREADS=1 python benchmarks/threads.py --out benchmarks/results/threads_cpu.json

Each figure is the median of short timed windows. On a shared 2-core machine the second torch thread competes with
the other process for the same core: the figures say how much that costs.
"""

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import time
from typing import Any

import torch as th

from sb3_generative import GMPO
from speed import arrays, write_json  # benchmarks/speed.py, next to this file

SIZES = {
    "demo": dict(batch_size=256, policy_kwargs=dict(net_arch=[128, 128], critic_net_arch=[64, 64])),
    "cpu_recipe": dict(batch_size=256, policy_kwargs=dict(net_arch=[512, 256, 128])),
    "paper": dict(batch_size=4096, policy_kwargs=dict(net_arch=[512, 256, 128])),
}


def spin(stop: Any) -> None:
    """A busy process: what another user's job does to the machine."""
    x = 0
    while not stop.is_set():
        x += 1


def steps_per_second(step: Any, seconds: float) -> float:
    step()  # warm-up
    rates = []
    for _ in range(3):
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 3:
            step()
            count += 1
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates)


def measure(size: str, threads: int, seconds: float) -> dict[str, float]:
    th.set_num_threads(threads)
    settings = SIZES[size]
    model = GMPO("GenerativePolicy", None, dataset=arrays(), critic_steps=0, seed=0, device="cpu", **settings).pretrain()
    buffer = model.replay_buffer
    assert buffer is not None
    critic = steps_per_second(lambda: model.critic_step(buffer.sample(model.batch_size)), seconds)
    gmpo = steps_per_second(lambda: model.train(1, model.batch_size), seconds)
    return {"critic_steps_per_s": round(critic, 1), "gmpo_steps_per_s": round(gmpo, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=6.0, help="timed seconds per figure")
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--out", default="benchmarks/results/threads_cpu.json")
    args = parser.parse_args()
    rows = []
    for load in ("idle", "one busy process"):
        stop = multiprocessing.Event()
        busy = multiprocessing.Process(target=spin, args=(stop,)) if load != "idle" else None
        if busy is not None:
            busy.start()
        try:
            for size in args.sizes:
                for threads in (1, 2):
                    row = {"load": load, "size": size, "threads": threads, **measure(size, threads, args.seconds)}
                    print(json.dumps(row), flush=True)
                    rows.append(row)
        finally:
            stop.set()
            if busy is not None:
                busy.join()
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    write_json(args.out, "threads.py", machine, rows, prefix="OMP_NUM_THREADS=1 ")


if __name__ == "__main__":
    main()
