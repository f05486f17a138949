"""Train the IQL critic once, then reuse it for GMPO and for GMPG (they use the same critic).

python examples/shared_critic.py --critic-steps 5000
"""

import os

from _common import SMALL, dataset_or_demo, example_parser

from sb3_generative import GMPG, GMPO

parser = example_parser(__doc__)
args = parser.parse_args()
dataset = dataset_or_demo(args.dataset)

# 1. a GMPO model whose first learn() trains the critic (0 policy steps: critic only)
critic_model = GMPO("GenerativePolicy", args.env, dataset=dataset, critic_steps=args.critic_steps, seed=0, **SMALL)
critic_model.pretrain()
critic_path = os.path.join(args.out, "iql_critic_model")
critic_model.save(critic_path)

# 2. GMPO with the critic object: no critic training
gmpo = GMPO(
    "GenerativePolicy", args.env, dataset=dataset, critic=critic_model.critic, beta=0.05, learning_rate=1e-3, seed=0, **SMALL
)
gmpo.learn(args.steps)

# 3. GMPG with the critic from the saved file (e.g. another process, another day)
gmpg = GMPG(
    "GenerativePolicy",
    args.env,
    dataset=dataset,
    critic=critic_path + ".zip",
    bc_steps=args.steps,
    batch_size=64,
    critic_batch_size=256,
    policy_kwargs=SMALL["policy_kwargs"],
    beta=0.05,
    seed=0,
)
gmpg.learn(max(1, args.steps // 100))
same = all((a == b).all() for a, b in zip(gmpo.critic.state_dict().values(), gmpg.critic.state_dict().values(), strict=True))
print(f"GMPO and GMPG share one critic, trained once: {same}")
