"""Train GMPO or GMPG on a Minari dataset, save, reload, and evaluate with SB3's evaluate_policy.

    python examples/train_and_evaluate.py --algo gmpo
    MINARI_DATASETS_PATH=~/minari python examples/train_and_evaluate.py --algo gmpg \
        --dataset d4rl-style/hopper/medium-v0 --steps 1000
"""

import os

from _common import SMALL, dataset_or_demo, env_id_of, example_parser
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_generative import GMPG, GMPO

parser = example_parser(__doc__)
parser.add_argument("--algo", choices=["gmpo", "gmpg"], default="gmpo")
args = parser.parse_args()
dataset = dataset_or_demo(args.dataset)

if args.algo == "gmpo":
    model = GMPO(
        "GenerativePolicy",
        args.env,
        dataset=dataset,
        beta=0.05,
        learning_rate=1e-3,
        critic_steps=args.critic_steps,
        seed=0,
        verbose=1,
        **SMALL,
    )
    model.learn(args.steps)
else:  # behaviour cloning, critic, then a few (expensive) policy-gradient steps
    model = GMPG(
        "GenerativePolicy",
        args.env,
        dataset=dataset,
        beta=0.05,
        learning_rate=1e-4,
        batch_size=64,
        bc_steps=args.steps,
        critic_steps=args.critic_steps,
        critic_batch_size=256,
        policy_kwargs=SMALL["policy_kwargs"],
        seed=0,
        verbose=1,
    )
    model.learn(max(1, args.steps // 100))
path = os.path.join(args.out, f"{args.algo}_model")
model.save(path)

loaded = type(model).load(path)  # no env, no dataset needed to act
mean, std = evaluate_policy(loaded, make_vec_env(env_id_of(model, args.env), n_envs=5, seed=0), n_eval_episodes=5)
print(f"{args.algo.upper()}: mean return {mean:.1f} +- {std:.1f}")
if loaded.ref_min_score is not None and loaded.ref_max_score is not None:
    print(f"normalised score {float(loaded.normalized_score(mean)):.1f}")
