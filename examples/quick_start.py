"""The README's quick start: D4RL-style hopper data made by the package, GMPO at a CPU-sized budget, SB3's tools.

    python examples/quick_start.py                    # about 5 minutes on a 2-core CPU
    python examples/quick_start.py --steps 100        # a smoke run

Scale up on a GPU: the paper's entry is in the packaged Zoo config (batch 4096, critic_steps 1.2 M, 2.4 M GMPO steps).
"""

import argparse
import os

import gymnasium as gym
from stable_baselines3.common.callbacks import EvalCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

from sb3_generative import GMPO
from sb3_generative.data import make_d4rl_style

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--steps", type=int, default=5000, help="GMPO policy steps")
parser.add_argument("--critic-steps", type=int, default=10_000)
parser.add_argument("--data-steps", type=int, default=100_000, help="transitions of the made dataset")
parser.add_argument("--root", default=os.path.expanduser("~/.minari/datasets"), help="MINARI_DATASETS_PATH")
args = parser.parse_args()

# the data: the package's own generator (the same as `sb3-generative-data d4rl-style --root ... --tasks hopper
# --levels medium --steps 100000`); with a network, Minari's remote ids work too (dataset=..., download=True)
os.environ["MINARI_DATASETS_PATH"] = args.root
make_d4rl_style(args.root, tasks=["hopper"], levels=["medium"], steps=args.data_steps)

model = GMPO(
    "GenerativePolicy",
    "Hopper-v4",
    dataset="d4rl-style/hopper/medium-v0",
    batch_size=256,  # CPU-sized; the paper: 4096 on a GPU
    critic_steps=args.critic_steps,  # the paper: 1.2 M
    beta=3.0,
    torch_threads=1,  # holds up when the machine is shared (benchmarks/RESULTS.md)
    seed=0,
    verbose=1,
)
eval_env = Monitor(gym.make("Hopper-v4"))  # SB3's evaluation records episodes through Monitor
model.learn(args.steps, callback=EvalCallback(eval_env, eval_freq=max(1, args.steps // 2), n_eval_episodes=3))
model.save("gmpo_hopper")
model = GMPO.load("gmpo_hopper")
mean, std = evaluate_policy(model, eval_env, n_eval_episodes=5)
print(f"return {mean:.0f} +- {std:.0f}, D4RL-normalised {model.normalized_score(mean):.1f} (the data: 42)")
