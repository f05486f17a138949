"""A trained generative policy in an existing SB3 loop: predict step by step, VecEnv batches, evaluate_policy.

python examples/sb3_evaluation_loop.py --model gmpo_model.zip
"""

import gymnasium as gym
from _common import env_id_of, example_parser, small_gmpo
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_generative import GMPO

parser = example_parser(__doc__)
parser.add_argument("--model", default=None, help="a saved GMPO/GMPG zip (default: train a small one)")
args = parser.parse_args()

if args.model:
    model = GMPO.load(args.model)
    env_id = args.env
else:
    model = small_gmpo(args).learn(args.steps)
    env_id = env_id_of(model, args.env)

# 1. the plain Gymnasium loop every SB3 user has written
env = gym.make(env_id)
obs, _ = env.reset(seed=0)
episode_return, done = 0.0, False
while not done:
    action, _ = model.predict(obs, deterministic=True)  # the same observation always gives the same action
    obs, reward, terminated, truncated, _ = env.step(action)
    episode_return += float(reward)
    done = terminated or truncated
print(f"one episode: return {episode_return:.1f}")

# 2. a VecEnv: one batched predict for all environments
vec_env = make_vec_env(env_id, n_envs=4, seed=0)
actions, _ = model.predict(vec_env.reset(), deterministic=True)
print(f"batched actions, shape {actions.shape}")

# 3. SB3's evaluate_policy, with the model or the bare policy, stochastic or deterministic
for deterministic in (True, False):
    mean, std = evaluate_policy(model.policy, vec_env, n_eval_episodes=4, deterministic=deterministic)
    print(f"evaluate_policy(deterministic={deterministic}): {mean:.1f} +- {std:.1f}")
