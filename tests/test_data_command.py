"""The package's own data command: D4RL-style Minari datasets, the same semantics as D4RL's protocol."""

import os
import subprocess
import sys

import minari
import numpy as np
import pytest

from sb3_generative import GMPO, load_offline_data
from sb3_generative.data import REFERENCE_SCORES
from sb3_generative.data.cli import main
from tests.helpers import tiny


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory, minari_root: str) -> str:
    replays = tmp_path_factory.mktemp("replays")
    rng = np.random.default_rng(0)
    n = 50  # a recorded replay: two episodes, a fall and a cut
    np.savez(
        replays / "hopper-medium-replay.npz",
        observations=rng.normal(size=(n, 11)).astype(np.float32),
        actions=rng.uniform(-1, 1, (n, 3)).astype(np.float32),
        rewards=rng.normal(size=n).astype(np.float32),
        next_observations=rng.normal(size=(n, 11)).astype(np.float32),
        terminals=np.arange(n) == 19,
        timeouts=np.zeros(n, bool),
    )
    main(["d4rl-style", "--root", minari_root, "--tasks", "hopper", "--levels", "medium", "expert", "medium-expert",
          "--steps", "1000", "--jobs", "1", "--replay", str(replays)])  # fmt: skip
    return minari_root


def test_datasets_have_d4rl_semantics(made: str) -> None:
    local = minari.list_local_datasets()
    for level in ("medium", "expert", "medium-expert", "medium-replay"):
        assert f"d4rl-style/hopper/{level}-v0" in local, level
    medium = load_offline_data("d4rl-style/hopper/medium-v0")
    assert len(medium) == 1000 and medium.env_spec.id == "Hopper-v4"
    assert (medium.ref_min_score, medium.ref_max_score) == REFERENCE_SCORES["hopper"]
    ends = np.flatnonzero(medium.terminations | medium.truncations)
    assert ends[-1] == 999 and medium.truncations[-1] and not medium.terminations[-1]  # the final cut
    assert medium.terminations.sum() >= 1  # hopper's medium policy falls: a termination, never a time-out
    assert not (medium.terminations & medium.truncations).any()
    expert = load_offline_data("d4rl-style/hopper/expert-v0")
    both = load_offline_data("d4rl-style/hopper/medium-expert-v0")
    assert len(both) == len(medium) + len(expert)
    np.testing.assert_array_equal(both.observations[:1000], medium.observations)
    replay = load_offline_data("d4rl-style/hopper/medium-replay-v0")
    assert len(replay) == 50 and replay.terminations[19] and replay.truncations[-1]


def test_a_model_trains_on_the_made_data(made: str) -> None:
    model = GMPO("GenerativePolicy", None, dataset="d4rl-style/hopper/medium-v0", **tiny(GMPO)).learn(2)
    assert model.get_env().envs[0].spec.id == "Hopper-v4"
    assert np.isfinite(model.normalized_score(1000.0))


def test_the_command_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sb3_generative.data", "d4rl-style", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "--replay" in result.stdout and "--steps" in result.stdout
    with pytest.raises(SystemExit, match="medium-replay datasets come from a recorded SAC replay"):
        main(["d4rl-style", "--root", "unused", "--tasks", "hopper", "--levels", "medium-replay"])


def test_a_first_run_prints_only_what_a_user_can_act_on(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The data command on two tasks (in worker processes) and the first use of d3rlpy print no third party's notice:
    no Gymnasium "v4 is out of date", no MuJoCo "settotalmass", no Minari "eval_env is set to None", no d3rlpy
    "Register Shimmy environments"; the command's own summary lines still show."""
    command = [sys.executable, "-W", "default", "-m", "sb3_generative.data", "d4rl-style", "--root", str(tmp_path),
               "--tasks", "halfcheetah", "hopper", "--levels", "medium", "--steps", "200", "--jobs", "2"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "MINARI_DATASETS_PATH": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    for notice in ("out of date", "settotalmass", "eval_env", "Warning"):
        assert notice not in result.stdout + result.stderr, notice
    assert "d4rl-style/halfcheetah/medium-v0: 1 episodes, 200 steps" in result.stdout
    code = "import sb3_generative; from sb3_generative.critics.iql import IQLCritic; IQLCritic(3, 1)"
    first_use = subprocess.run([sys.executable, "-W", "default", "-c", code], capture_output=True, text=True)
    assert first_use.returncode == 0 and first_use.stdout + first_use.stderr == "", first_use.stdout + first_use.stderr
