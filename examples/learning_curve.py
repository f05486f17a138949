"""Train with EvalCallback and plot the learning curve (PNG) from its evaluations.npz, in D4RL-normalised scores
(the dataset's reference returns: 0 a random policy, 100 an expert) when the dataset stores them.

python examples/learning_curve.py --steps 3000        # needs matplotlib (pip install -e ".[plots]")
"""

import os

import numpy as np
from _common import env_id_of, example_parser, small_gmpo
from stable_baselines3.common.callbacks import EvalCallback
from stable_baselines3.common.env_util import make_vec_env


parser = example_parser(__doc__)
parser.add_argument("--eval-freq", type=int, default=500)
args = parser.parse_args()

model = small_gmpo(args)
log_path = os.path.join(args.out, "gmpo_eval")
eval_env = make_vec_env(env_id_of(model, args.env), n_envs=5, seed=1)
model.learn(args.steps, callback=EvalCallback(eval_env, eval_freq=args.eval_freq, n_eval_episodes=5, log_path=log_path))

evaluations = np.load(os.path.join(log_path, "evaluations.npz"))
steps, returns = evaluations["timesteps"], evaluations["results"]

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

normalised = model.ref_min_score is not None and model.ref_max_score is not None
scores = model.normalized_score(returns) if normalised else returns
plt.figure(figsize=(6, 4))
plt.plot(steps, scores.mean(axis=1), marker="o", label="GMPO")
plt.fill_between(steps, scores.min(axis=1), scores.max(axis=1), alpha=0.2)
plt.xlabel("policy gradient steps")
plt.ylabel("D4RL-normalised score" if normalised else "evaluation return (no reference returns stored)")
plt.legend()
plt.tight_layout()
png = os.path.join(args.out, "learning_curve.png")
plt.savefig(png, dpi=100)
print(f"learning curve written to {png}")
