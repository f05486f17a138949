"""SB3's logger tests (``test_logger.py`` in SB3), for both algorithms."""

import json
import os
import time

import numpy as np
import pytest
from stable_baselines3.common.logger import configure

from sb3_generative import GMPG
from tests.helpers import ALGOS, make_model

POLICY_KEYS = {
    "GMPO": ("train/policy_loss", "train/weight_clamped_fraction", "train/weight_ess", "train/grad_norm"),
    "GMPG": (
        "train/policy_loss",
        "train/q",
        "train/kl",
        "train/log_pi",
        "train/log_mu",
        "train/outside_box_fraction",
        "train/grad_norm",
    ),
}


@pytest.mark.parametrize("cls", ALGOS)
def test_logger_records_every_phase(cls, pendulum_id: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = make_model(cls, pendulum_id)
    model.set_logger(configure(str(tmp_path / "log"), ["csv", "json"]))
    model.learn(4, log_interval=2)
    rows = [json.loads(line) for line in (tmp_path / "log" / "progress.json").read_text().splitlines()]
    policy_rows = [row for row in rows if "train/policy_loss" in row]
    assert [row["time/total_timesteps"] for row in policy_rows] == [2, 4]  # no extra table at the end
    model.learn(3, log_interval=2, reset_num_timesteps=False)
    rows = [json.loads(line) for line in (tmp_path / "log" / "progress.json").read_text().splitlines()]
    assert [row["time/total_timesteps"] for row in rows if "train/policy_loss" in row] == [2, 4, 6, 7]  # 7: the rest
    for key in (*POLICY_KEYS[cls.__name__], "train/reward_scale", "time/fps"):
        assert np.isfinite(policy_rows[-1][key]), key
    assert policy_rows[-1]["train/reward_scale"] == pytest.approx(model.reward_scale)
    critic_rows = [row for row in rows if "critic/q_loss" in row]
    assert [row["critic/step"] for row in critic_rows] == list(range(2, 21, 2))  # every log_interval critic steps
    assert all(np.isfinite(row["critic/v_loss"]) for row in critic_rows)
    if cls is GMPG:
        assert [row["bc/step"] for row in rows if "bc/loss" in row] == list(range(2, 21, 2))


@pytest.mark.parametrize("cls", ALGOS)
def test_log_interval_none_logs_each_phase_once(cls, pendulum_id: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = make_model(cls, pendulum_id)
    model.set_logger(configure(str(tmp_path / "log"), ["json"]))
    model.learn(3, log_interval=None)
    rows = [json.loads(line) for line in (tmp_path / "log" / "progress.json").read_text().splitlines()]
    assert [row["critic/step"] for row in rows if "critic/q_loss" in row] == [20]
    assert [row["time/total_timesteps"] for row in rows if "train/policy_loss" in row] == [3]


@pytest.mark.parametrize("cls", ALGOS)
def test_tensorboard(cls, pendulum_id: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("tensorboard")
    model = make_model(cls, pendulum_id, tensorboard_log=str(tmp_path / "tb"))
    model.learn(2)
    model.learn(2, reset_num_timesteps=False)
    assert os.listdir(tmp_path / "tb") == [f"{cls.__name__}_1"]


@pytest.mark.parametrize("cls", ALGOS)
def test_fps_logger_no_division_by_zero(cls, pendulum_id: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = make_model(cls, pendulum_id)
    model.set_logger(configure(str(tmp_path / "log"), ["json"]))
    model.learn(1, log_interval=1)
    model.start_time = time.time_ns()
    model.dump_logs()
    last = json.loads((tmp_path / "log" / "progress.json").read_text().splitlines()[-1])
    assert last["time/fps"] >= 0
