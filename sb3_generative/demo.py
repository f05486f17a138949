"""The embedded default job: make a small offline dataset, train GMPO on it, evaluate, save. No network.

    python -m sb3_generative.demo                 # about two minutes on a 2-core CPU, one torch thread
    python -m sb3_generative.demo --steps 500     # quicker
    python -m sb3_generative.demo --threads 2     # on an idle machine (little gain at the demo's sizes)

The dataset comes from a noisy energy-pumping controller on ``Pendulum-v1`` (half of the actions random), written
as a local Minari dataset, exactly as a user's own data would be. GMPO's advantage weighting should beat the
data's own average return.
"""

import argparse
import os
import tempfile
import time

import gymnasium as gym
import numpy as np

DEMO_DATASET_ID = "sb3gen-demo/pendulum/noisy-v0"


def pendulum_controller(obs: np.ndarray, rng: np.random.Generator, noise: float = 0.5) -> np.ndarray:
    """Energy pumping until the pole is near the top, then a PD stabiliser; a ``noise`` share of random actions.

    :param obs: Pendulum observation (cos, sin, angular velocity)
    :param rng: random generator
    :param noise: probability of a uniformly random action instead of the controller's
    :return: action in [-2, 2]
    """
    cos, sin, vel = obs
    if rng.random() < noise:
        return rng.uniform(-2.0, 2.0, size=1).astype(np.float32)
    energy = 0.5 * vel**2 + 10.0 * (cos - 1.0)  # zero for the pole at rest at the top
    pump = 2.0 * np.sign(vel + 1e-3) if energy < 0 else -0.5 * np.sign(vel)
    action = -(10.0 * np.arctan2(sin, cos) + vel) if cos > 0.85 else pump
    return np.clip(action + rng.normal(0.0, 0.3), -2.0, 2.0).astype(np.float32).reshape(1)


def pendulum_episodes(n_episodes: int = 4, seed: int = 0, length: int = 200, noise: float = 0.5) -> list:
    """Minari episode buffers of the noisy controller on Pendulum-v1.

    :param n_episodes: number of episodes
    :param seed: seed of the resets and of the action noise
    :param length: steps per episode (all end truncated)
    :param noise: share of random actions
    """
    from minari.data_collector import EpisodeBuffer

    env = gym.make("Pendulum-v1", max_episode_steps=length)
    rng = np.random.default_rng(seed)
    episodes = []
    for k in range(n_episodes):
        obs, _ = env.reset(seed=seed * 1000 + k)
        cols: dict[str, list] = {"o": [obs], "a": [], "r": [], "te": [], "tr": []}
        done = False
        while not done:
            action = pendulum_controller(obs, rng, noise)
            obs, reward, terminated, truncated, _ = env.step(action)
            for key, value in zip(("o", "a", "r", "te", "tr"), (obs, action, float(reward), terminated, truncated)):
                cols[key].append(value)
            done = terminated or truncated
        episodes.append(
            EpisodeBuffer(
                id=k,
                seed=seed * 1000 + k,
                observations=np.asarray(cols["o"], np.float32),
                actions=np.asarray(cols["a"], np.float32),
                rewards=cols["r"],
                terminations=cols["te"],
                truncations=cols["tr"],
            )
        )
    return episodes


def pendulum_reference_scores(n_episodes: int = 10, seed: int = 10_000) -> tuple[float, float]:
    """Reference returns for normalised scores: uniformly random actions (score 0) and the controller without its
    random actions (score 100), as D4RL defines them with a random and an expert policy.

    :param n_episodes: episodes of each
    :param seed: seed of their resets and noise
    """
    random_returns = [_episode_return(1.0, seed + k) for k in range(n_episodes)]
    expert_returns = [_episode_return(0.0, seed + k) for k in range(n_episodes)]
    return float(np.mean(random_returns)), float(np.mean(expert_returns))


def _episode_return(noise: float, seed: int, length: int = 200) -> float:
    env = gym.make("Pendulum-v1", max_episode_steps=length)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(pendulum_controller(obs, rng, noise))
        total, done = total + float(reward), terminated or truncated
    return total


def make_minari_dataset(dataset_id: str, episodes: list, env_id: str = "Pendulum-v1", **kwargs) -> object:  # type: ignore[no-untyped-def]
    """Write episode buffers as a local Minari dataset (replacing one of the same id).

    :param dataset_id: Minari id
    :param episodes: ``EpisodeBuffer`` list
    :param env_id: environment the data belongs to
    :param kwargs: extra ``create_dataset_from_buffers`` arguments (``ref_min_score``, ...)
    """
    import minari

    if dataset_id in minari.list_local_datasets():
        minari.delete_dataset(dataset_id)
    return minari.create_dataset_from_buffers(
        dataset_id=dataset_id,
        buffer=episodes,
        env=gym.make(env_id).spec,
        eval_env=gym.make(env_id).spec,
        algorithm_name="noisy controller",
        author="sb3_generative",
        author_email="n/a",
        code_permalink="n/a",
        description="sb3_generative demo data",
        **kwargs,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3000, help="GMPO policy gradient steps")
    parser.add_argument("--critic-steps", type=int, default=15000)
    parser.add_argument("--episodes", type=int, default=20, help="dataset episodes of 200 steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="gmpo_pendulum_demo", help="where the model is saved")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 holds up on a shared machine)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("MINARI_DATASETS_PATH", os.path.join(tempfile.gettempdir(), "sb3_generative_demo"))

    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    from sb3_generative import GMPO, load_offline_data

    start = time.time()
    low, high = pendulum_reference_scores()
    make_minari_dataset(DEMO_DATASET_ID, pendulum_episodes(args.episodes, args.seed), ref_min_score=low, ref_max_score=high)
    data_returns = load_offline_data(DEMO_DATASET_ID).episode_returns()
    print(f"dataset {DEMO_DATASET_ID}: {len(data_returns)} episodes, mean return {data_returns.mean():.1f}")
    model = GMPO(
        "GenerativePolicy",
        None,
        dataset=DEMO_DATASET_ID,
        batch_size=256,
        critic_steps=args.critic_steps,
        critic_batch_size=256,
        beta=0.05,
        learning_rate=1e-3,
        seed=args.seed,
        verbose=1,
        device="cpu",
        torch_threads=args.threads,
        policy_kwargs=dict(net_arch=[128, 128], generative_model="gvp", n_sampling_steps=10, critic_net_arch=[64, 64]),
    )
    # Pendulum's advantages span tens of (scaled) reward units, so beta is small here; locomotion uses 1 to 16
    model.learn(args.steps, log_interval=1000, progress_bar=False)
    model.save(args.out)
    eval_env = make_vec_env("Pendulum-v1", n_envs=10, seed=123)
    mean, std = evaluate_policy(model, eval_env, n_eval_episodes=10)  # make_vec_env wraps each env in Monitor
    score, data_score = model.normalized_score(mean), model.normalized_score(data_returns.mean())
    print(f"GMPO return {mean:.1f} +- {std:.1f} against the dataset's {data_returns.mean():.1f} ({time.time() - start:.0f} s)")
    print(f"normalised (0 random, 100 the noiseless controller): GMPO {score:.1f}, the dataset {data_score:.1f}")
    print(f"Files: the model {os.path.abspath(args.out)}.zip")
    print(f"       the dataset {DEMO_DATASET_ID} under {os.environ['MINARI_DATASETS_PATH']}")


if __name__ == "__main__":
    main()
