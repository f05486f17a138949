"""beta="auto" (a Lagrange multiplier on GMPG's KL budget and on GMPO's effective sample size, as SAC's
ent_coef="auto"), its validation and logging, and the guard that warns when GMPG fails in the two measured ways."""

import csv
import warnings

import pytest
import torch as th
from stable_baselines3.common.logger import configure

from sb3_generative import GMPG, GMPO
from sb3_generative.common.adaptive_beta import dual_step, make_log_beta, parse_beta
from tests.helpers import make_model


def logged(model, tmp_path, steps: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Train ``steps`` policy steps logging once at the end; the ``train/*`` row written."""
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(steps, log_interval=steps)
    with open(tmp_path / "progress.csv") as file:
        rows = list(csv.DictReader(file))
    return {key: float(value) for key, value in rows[-1].items() if key.startswith("train/") and value != ""}


@pytest.mark.parametrize("bad", ["automatic", "auto_0", "auto_-1", "auto_x", -1.0, float("nan"), True, None])
def test_beta_settings_are_validated_when_the_model_is_built(bad, pendulum_id: str) -> None:  # type: ignore[no-untyped-def]
    for cls in (GMPO, GMPG):
        with pytest.raises(ValueError, match="beta must be a number >= 0, 'auto'"):
            make_model(cls, pendulum_id, beta=bad)
    assert parse_beta("auto") == (True, 1.0) and parse_beta("auto_0.5") == (True, 0.5) and parse_beta(3) == (False, 3.0)
    with pytest.raises(ValueError, match="target_kl"):
        make_model(GMPG, pendulum_id, beta="auto", target_kl=0.0)
    with pytest.raises(ValueError, match="target_ess"):
        make_model(GMPO, pendulum_id, beta="auto", target_ess=1.5)


def test_dual_descent_moves_beta_toward_the_budget() -> None:
    log_beta, optimizer = make_log_beta(1.0, 0.1, th.device("cpu"))
    for _ in range(5):  # KL above its budget: beta falls; an effective sample size below its budget: beta falls too
        dual_step(log_beta, optimizer, th.tensor(2.0), 1.0, grows_with_beta=True)
    assert log_beta.item() < -0.4
    log_beta, optimizer = make_log_beta(1.0, 0.1, th.device("cpu"))
    before = log_beta.item()
    for _ in range(5):
        dual_step(log_beta, optimizer, th.tensor(0.9), 0.2, grows_with_beta=False)  # ESS above budget: beta rises
    assert log_beta.item() > before


@pytest.mark.parametrize("target, falls", [(1e-6, True), (50.0, False)])
def test_gmpg_beta_follows_its_kl_budget(target, falls, pendulum_id: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = make_model(GMPG, pendulum_id, beta="auto_3", target_kl=target, beta_learning_rate=0.05)
    values = logged(model, tmp_path, 6)
    assert (float(model.beta_value) < 3.0) == falls and values["train/beta"] > 0
    assert "train/advantage_over_data" in values and "train/kl" in values


@pytest.mark.parametrize("target, falls", [(0.99, True), (1e-3, False)])
def test_gmpo_beta_follows_its_ess_budget(target, falls, pendulum_id: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = make_model(GMPO, pendulum_id, beta="auto_3", target_ess=target, beta_learning_rate=0.05)
    values = logged(model, tmp_path, 6)
    assert (float(model.beta_value) < 3.0) == falls
    assert values["train/beta"] == pytest.approx(float(model.beta_value), rel=0.5)  # the mean over the 6 steps
    assert "train/advantage_over_data" in values and "train/weight_ess" in values


def test_a_fixed_beta_stays_and_saves_no_beta_optimizer(pendulum_id: str) -> None:
    model = make_model(GMPO, pendulum_id, beta=2.5).learn(2)
    assert model.beta_value == 2.5 and model.log_beta is None and "beta_optimizer" not in model.get_parameters()


@pytest.mark.parametrize(
    "kl, gain, warns",
    [(0.8, -0.2, "no better than the data's"), (3.0, 5.0, "likely exploited"), (0.2, -0.2, None), (0.8, 0.3, None)],
)
def test_gmpg_warns_once_on_the_two_measured_failures(kl, gain, warns, pendulum_id: str) -> None:  # type: ignore[no-untyped-def]
    model = make_model(GMPG, pendulum_id, kl_per_dimension=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model._check_health({"kl": kl, "advantage_over_data": gain})
        model._check_health({"kl": kl, "advantage_over_data": gain})
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    if warns is None:
        assert messages == []
    else:
        assert len(messages) == 1 and warns in messages[0]
        assert "train/kl" in messages[0] and "train/advantage_over_data" in messages[0]
