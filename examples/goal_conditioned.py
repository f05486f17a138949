"""Goal-conditioned data with Dict observations: a PointMaze dataset made by the package, GMPO with SB3's
MultiInputPolicy (a CombinedExtractor over observation, achieved_goal and desired_goal), the success rate on the
single-goal evaluation maze, save and safe load.

    pip install -e ".[maze]"
    python examples/goal_conditioned.py                       # about 10 minutes on a 2-core CPU
    python examples/goal_conditioned.py --steps 20 --critic-steps 20 --data-steps 600   # a smoke run
"""

import argparse
import os

import numpy as np
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_generative import GMPO
from sb3_generative.data.pointmaze import dataset_id, make_pointmaze

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--maze", default="umaze", choices=["umaze", "medium", "large"])
parser.add_argument("--steps", type=int, default=5000, help="GMPO policy steps")
parser.add_argument("--critic-steps", type=int, default=20_000)
parser.add_argument("--data-steps", type=int, default=200_000, help="transitions of the made dataset")
parser.add_argument("--root", default=os.path.expanduser("~/.minari/datasets"), help="MINARI_DATASETS_PATH")
parser.add_argument("--out", default=".", help="folder for the model")
args = parser.parse_args()

print(make_pointmaze(args.root, [args.maze], args.data_steps, reference_episodes=10)[0])
model = GMPO(
    "MultiInputPolicy",  # a Dict observation: SB3's CombinedExtractor, statistics per key
    None,  # the dataset's evaluation maze: one goal, random starts
    dataset=dataset_id(args.maze),
    batch_size=256,
    critic_steps=args.critic_steps,
    expectile=0.9,  # IQL's setting for sparse goal-reaching rewards (AntMaze)
    bc_steps=args.critic_steps,
    beta="auto",  # the weights' effective sample size kept at a fifth of the batch
    normalize_observations=True,
    torch_threads=1,
    seed=0,
)
model.learn(args.steps)
# model.get_env() is the evaluation maze Minari recorded with the data
mean, _ = evaluate_policy(model, model.get_env(), n_eval_episodes=5)
print(f"GMPO on {args.maze}: return {mean:.1f}, D4RL-normalised {float(model.normalized_score(mean)):.1f}")
path = os.path.join(args.out, f"gmpo_{args.maze}")
model.save(path)
loaded = GMPO.load(path, safe=True)  # rebuilds the CombinedExtractor from plain JSON and weights only
obs, _ = model.get_env().envs[0].reset(seed=1)
same = np.array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])
print(f"safe load predicts the same: {same}")
