"""Shared fixtures: tiny Minari datasets in a temporary MINARI_DATASETS_PATH, never the network."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np
import pytest
import torch as th

from sb3_generative.demo import make_minari_dataset, pendulum_episodes
from tests.helpers import TINY, TINY_POLICY

PENDULUM_ID = "sb3gen-test/pendulum/noisy-v0"
__all__ = ["TINY", "TINY_POLICY", "make_minari_dataset", "pendulum_episodes"]


@pytest.fixture(scope="session")
def minari_root(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = str(tmp_path_factory.mktemp("minari"))
    os.environ["MINARI_DATASETS_PATH"] = root
    return root


@pytest.fixture(scope="session")
def pendulum_id(minari_root: str) -> str:
    make_minari_dataset(PENDULUM_ID, pendulum_episodes(), ref_min_score=-1500.0, ref_max_score=-150.0)
    return PENDULUM_ID


@pytest.fixture()
def d4rl_arrays() -> dict[str, np.ndarray]:
    """D4RL-format flat arrays: 3 episodes (a fall, a fall on the last allowed step, a cut at the end)."""
    rng = np.random.default_rng(0)
    n = 30
    data = {
        "observations": rng.normal(size=(n, 4)).astype(np.float32),
        "actions": rng.uniform(-1, 1, size=(n, 1)).astype(np.float32),
        "rewards": rng.normal(size=n).astype(np.float32),
        "next_observations": rng.normal(size=(n, 4)).astype(np.float32),
        "terminals": np.zeros(n, bool),
        "timeouts": np.zeros(n, bool),
    }
    data["terminals"][9] = True  # a fall
    data["terminals"][19] = data["timeouts"][19] = True  # a fall on the last allowed step: terminal
    return data  # the last episode (20..29) is cut with neither flag


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Run each test in its own folder (MuJoCo and loggers write into the working directory)."""
    monkeypatch.chdir(tmp_path)
    th.set_num_threads(1)
