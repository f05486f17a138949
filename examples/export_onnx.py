"""Train a tiny GMPO, export its whole sampler to ONNX, and run it with onnxruntime in a process without torch.

python examples/export_onnx.py --steps 500         # needs the export extra: pip install -e ".[export]"
"""

import os
import subprocess
import sys

import numpy as np
from _common import example_parser, small_gmpo

from sb3_generative.export import export_onnx

parser = example_parser(__doc__)
args = parser.parse_args()
model = small_gmpo(args).learn(args.steps)
path = os.path.join(args.out, "policy.onnx")
export_onnx(model, path)
obs = np.random.default_rng(0).normal(size=(4, model.observation_space.shape[0])).astype(np.float32)
print(f"predict: {np.round(model.predict(obs, deterministic=True)[0][:, 0], 4).tolist()}")
runner = os.path.join(os.path.dirname(os.path.abspath(__file__)), "run_onnx_policy.py")
result = subprocess.run([sys.executable, runner, path, str(obs.shape[1])], capture_output=True, text=True, check=True)
print(result.stdout, end="")
