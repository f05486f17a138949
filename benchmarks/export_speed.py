"""``predict`` against the exported programs (onnxruntime, TorchScript) on CPU: the same 31-step solve, timed at batch
1 (a controller's step) and 256, with the paper's network ([512, 256, 128]) on HalfCheetah's sizes.

    OMP_NUM_THREADS=1 python benchmarks/export_speed.py --threads 1 --out benchmarks/results/export_cpu.json

onnxruntime runs with as many intra-op threads as torch, so the figures compare engines, not thread counts.
"""

import argparse
import json
import os
import platform
import tempfile

import numpy as np
import torch as th

from sb3_generative import GMPO
from sb3_generative.export import export_onnx, export_torchscript
from speed import OBS_DIM, arrays, timed, write_json  # benchmarks/speed.py, next to this file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--out", default="benchmarks/results/export_cpu.json")
    args = parser.parse_args()
    th.set_num_threads(args.threads)
    import onnxruntime

    model = GMPO("GenerativePolicy", None, dataset=arrays(), critic_steps=0, seed=0, device="cpu")
    folder = tempfile.mkdtemp()
    export_onnx(model, os.path.join(folder, "policy.onnx"))
    export_torchscript(model, os.path.join(folder, "policy.pt"))
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = args.threads
    session = onnxruntime.InferenceSession(os.path.join(folder, "policy.onnx"), options, providers=["CPUExecutionProvider"])
    scripted = th.jit.load(os.path.join(folder, "policy.pt"))
    rows, cpu = [], th.device("cpu")
    for batch in (1, 256):
        obs = np.random.default_rng(batch).normal(size=(batch, OBS_DIM)).astype(np.float32)
        obs_t = th.as_tensor(obs)
        calls = {
            "predict": lambda obs=obs: model.predict(obs, deterministic=True),
            "onnxruntime": lambda obs=obs: session.run(["action"], {"observation": obs}),
            "torchscript": lambda obs_t=obs_t: scripted(obs_t),
        }
        with th.no_grad():
            times = {name: timed(call, cpu, args.repeats) for name, call in calls.items()}
        row = {"batch": batch, **{f"{k}_ms": round(v * 1e3, 3) for k, v in times.items()}}
        row.update({f"{k}_speedup": round(times["predict"] / v, 2) for k, v in times.items() if k != "predict"})
        print(json.dumps(row), flush=True)
        rows.append(row)
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {args.threads} threads"
    prefix = f"OMP_NUM_THREADS={args.threads} "
    write_json(args.out, "export_speed.py", machine, rows, prefix, onnxruntime=onnxruntime.__version__)


if __name__ == "__main__":
    main()
