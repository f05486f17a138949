"""The same GMPO run with each generative model: VP-SDE (noise prediction), GVP and I-CFM (velocity).

python examples/swap_generative_model.py --steps 2000
"""

from _common import SMALL, dataset_or_demo, env_id_of, example_parser
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_generative import GMPO

parser = example_parser(__doc__)
args = parser.parse_args()
dataset = dataset_or_demo(args.dataset)

critic = None
for generative_model in ("vpsde", "gvp", "icfm"):
    policy_kwargs = dict(SMALL["policy_kwargs"], generative_model=generative_model)
    model = GMPO(
        "GenerativePolicy",
        args.env,
        dataset=dataset,
        beta=0.05,
        learning_rate=1e-3,
        seed=0,
        critic_steps=args.critic_steps,
        critic=critic,
        batch_size=256,
        critic_batch_size=256,
        policy_kwargs=policy_kwargs,
    )
    model.learn(args.steps)
    critic = model.critic  # the critic does not depend on the generative model: train it once
    mean, _ = evaluate_policy(model, make_vec_env(env_id_of(model, args.env), n_envs=5, seed=0), n_eval_episodes=5)
    print(f"{generative_model:>6}: mean return {mean:.1f}")
