"""SB3's callback tests (``test_callbacks.py`` in SB3), for both algorithms: callbacks count policy gradient steps."""

import os

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.callbacks import (
    CallbackList,
    CheckpointCallback,
    EvalCallback,
    EveryNTimesteps,
    StopTrainingOnNoModelImprovement,
)
from stable_baselines3.common.env_util import make_vec_env

from tests.helpers import ALGOS, make_model


@pytest.mark.parametrize("cls", ALGOS)
def test_callbacks(cls, pendulum_id: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = make_model(cls, pendulum_id)
    eval_cb = EvalCallback(
        make_vec_env("Pendulum-v1"),
        eval_freq=4,
        n_eval_episodes=1,
        log_path=str(tmp_path / "eval"),
        best_model_save_path=str(tmp_path / "best"),
        callback_after_eval=StopTrainingOnNoModelImprovement(100, min_evals=100),
    )
    checkpoint = CheckpointCallback(save_freq=4, save_path=str(tmp_path / "ckpt"))
    every = EveryNTimesteps(n_steps=4, callback=CheckpointCallback(save_freq=1, save_path=str(tmp_path / "every")))
    model.learn(12, callback=CallbackList([eval_cb, checkpoint, every]), progress_bar=True)
    evaluations = np.load(tmp_path / "eval" / "evaluations.npz")
    assert evaluations["timesteps"].tolist() == [4, 8, 12]  # frequencies count gradient steps
    assert set(os.listdir(tmp_path / "ckpt")) == {f"rl_model_{n}_steps.zip" for n in (4, 8, 12)}
    assert len(os.listdir(tmp_path / "every")) == 3
    assert (tmp_path / "best" / "best_model.zip").exists()
    assert eval_cb.n_calls == model.num_timesteps == 12
    assert cls.load(tmp_path / "ckpt" / "rl_model_8_steps.zip").num_timesteps == 8


@pytest.mark.parametrize("cls", ALGOS)
def test_checkpoint_with_replay_buffer_does_not_crash(cls, pendulum_id: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """SB3 finds the dataset under ``replay_buffer`` and asks to save it: nothing is written, once a warning."""
    model = make_model(cls, pendulum_id)
    checkpoint = CheckpointCallback(save_freq=2, save_path=str(tmp_path), save_replay_buffer=True, verbose=2)
    with pytest.warns(UserWarning, match="replay buffer is its dataset") as record:
        model.learn(4, callback=checkpoint)
    assert sum("replay buffer" in str(w.message) for w in record) == 1
    assert sorted(os.listdir(tmp_path)) == ["rl_model_2_steps.zip", "rl_model_4_steps.zip"]


@pytest.mark.parametrize("cls", ALGOS)
@pytest.mark.parametrize("stop_value", [False, np.bool_(0), th.tensor(False)])
def test_callbacks_can_cancel_runs(cls, pendulum_id: str, stop_value) -> None:  # type: ignore[no-untyped-def]
    model = make_model(cls, pendulum_id)
    model.learn(50, callback=lambda _locals, _globals: stop_value)
    assert model.num_timesteps == 1
