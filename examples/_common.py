"""Helpers shared by the examples: a dataset to train on when the user names none."""

import argparse
import os
import tempfile

from sb3_generative import GMPO


def example_parser(description: str) -> argparse.ArgumentParser:
    """Arguments every example takes: a Minari dataset (default: the package's demo data), its env, a budget."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--dataset", default=None, help="local Minari id (default: make the Pendulum demo dataset)")
    parser.add_argument("--env", default=None, help="environment id (default: recovered from the dataset)")
    parser.add_argument("--steps", type=int, default=2000, help="policy gradient steps")
    parser.add_argument("--critic-steps", type=int, default=5000)
    parser.add_argument("--out", default=".", help="folder for models and logs")
    return parser


def dataset_or_demo(dataset: str | None) -> str:
    """The user's dataset id, or the demo Pendulum dataset (made once, locally, with no network)."""
    if dataset is not None:
        return dataset
    os.environ.setdefault("MINARI_DATASETS_PATH", os.path.join(tempfile.gettempdir(), "sb3_generative_demo"))
    import minari

    from sb3_generative.demo import DEMO_DATASET_ID, make_minari_dataset, pendulum_episodes, pendulum_reference_scores

    if DEMO_DATASET_ID not in minari.list_local_datasets():
        low, high = pendulum_reference_scores()
        make_minari_dataset(DEMO_DATASET_ID, pendulum_episodes(20), ref_min_score=low, ref_max_score=high)
    return DEMO_DATASET_ID


SMALL = dict(batch_size=256, critic_batch_size=256, policy_kwargs=dict(net_arch=[128, 128], critic_net_arch=[64, 64]))


def small_gmpo(args: argparse.Namespace) -> GMPO:
    """The examples' GMPO: small networks, the demo's beta and learning rate, on the chosen (or demo) dataset."""
    dataset = dataset_or_demo(args.dataset)
    return GMPO("GenerativePolicy", args.env, dataset=dataset, beta=0.05, learning_rate=1e-3, critic_steps=args.critic_steps,
                seed=0, **SMALL)  # fmt: skip


def env_id_of(model: object, env_id: str | None) -> str:
    """The id of the environment a model was built with (from the dataset when none was given)."""
    if env_id is not None:
        return env_id
    return model.get_env().envs[0].spec.id  # type: ignore[attr-defined]
