"""Run an exported policy with onnxruntime and numpy only: what a deployment needs (no torch, no SB3).

python examples/run_onnx_policy.py policy.onnx 3        # an .onnx file and the observation size
"""

import sys

import numpy as np
import onnxruntime

path, obs_dim = sys.argv[1], int(sys.argv[2])
session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
observation = np.random.default_rng(0).normal(size=(4, obs_dim)).astype(np.float32)
(action,) = session.run(["action"], {"observation": observation})
print(f"actions {action.shape}: {np.round(action[:, 0], 4).tolist()}")
print(f"torch imported: {'torch' in sys.modules}")
