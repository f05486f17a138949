"""Numerical faults, interrupted runs, atomic saves, exact resumption, and untrusted dataset files."""

import io
import json
import zipfile

import h5py
import numpy as np
import pytest
import torch as th
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import configure

from sb3_generative import GMPG, GMPO, DatasetError, load_offline_data
from sb3_generative.common.guard import NonFiniteError
from tests.conftest import TINY


def make_model(pendulum_id: str, **kwargs) -> GMPO:  # type: ignore[no-untyped-def]
    return GMPO("GenerativePolicy", "Pendulum-v1", dataset=pendulum_id, **{**TINY, "seed": 0, **kwargs})


class AtStep(BaseCallback):
    """Runs ``action(model)`` once, after gradient step ``step``."""

    def __init__(self, step: int, action) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.step, self.action = step, action

    def _on_step(self) -> bool:
        if self.num_timesteps == self.step:
            self.action(self.model)
        return True


# ---------------------------------------------------------------------------------------------------- numerical faults
def test_non_finite_policy_loss_stops_and_restores_last_finite_parameters(pendulum_id: str) -> None:
    model = make_model(pendulum_id)
    saved = {}

    def remember(m: GMPO) -> None:
        saved.update({k: v.clone() for k, v in m.policy.state_dict().items()})

    def poison(m: GMPO) -> None:
        with th.no_grad():
            m.actor.net.last.weight[0, 0] = float("nan")

    expected = r"Non-finite (policy_loss|grad_norm).*policy step 8.*state of policy step 5 was restored"
    with pytest.raises(NonFiniteError, match=expected):
        model.learn(20, log_interval=5, callback=[AtStep(5, remember), AtStep(7, poison)])
    assert model.num_timesteps == 5  # stopped at the first check after the fault, counters rolled back with the weights
    for key, value in model.policy.state_dict().items():
        assert th.equal(value, saved[key]), key
    assert all(th.isfinite(p).all() for p in model.policy.parameters())
    model.learn(5, reset_num_timesteps=False)  # and it can go on from there


def test_non_finite_critic_loss_names_the_loss_and_step(pendulum_id: str) -> None:
    model = make_model(pendulum_id, critic_steps=10)
    losses, calls = model.critic.losses, []

    def faulty(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        q_loss, v_loss = losses(*args, **kwargs)
        return (q_loss * float("inf"), v_loss) if len(calls) == 3 else (q_loss, v_loss)

    model.critic.losses = faulty  # type: ignore[method-assign]
    with pytest.raises(NonFiniteError, match=r"Non-finite q_loss .* at IQL critic step 3"):
        model.learn(1, log_interval=5)


def test_gradient_norm_and_clamped_fraction_are_logged(pendulum_id: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    for cls in (GMPO, GMPG):
        extra = {"bc_steps": 10, "n_gradient_steps": 2} if cls is GMPG else {}
        model = cls("GenerativePolicy", "Pendulum-v1", dataset=pendulum_id, **TINY, **extra)
        model.set_logger(configure(str(tmp_path / cls.__name__), ["json"]))
        model.learn(4, log_interval=2)
        rows = [json.loads(line) for line in (tmp_path / cls.__name__ / "progress.json").read_text().splitlines()]
        last = [row for row in rows if "train/grad_norm" in row][-1]
        assert last["train/grad_norm"] > 0
        if cls is GMPO:
            assert 0.0 <= last["train/weight_clamped_fraction"] <= 1.0


# ---------------------------------------------------------------------------------------------------- saving
def test_save_is_atomic(pendulum_id: str, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    model = make_model(pendulum_id)
    model.save(tmp_path / "model")
    good = (tmp_path / "model.zip").read_bytes()

    def crash(self, file, exclude=None, include=None):  # type: ignore[no-untyped-def]
        file.write(b"PK half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(BaseAlgorithm, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        model.save(tmp_path / "model")
    assert (tmp_path / "model.zip").read_bytes() == good  # the earlier save is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.zip"]  # no temporary file left


def test_keyboard_interrupt_leaves_a_model_to_save_and_continue(pendulum_id: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = make_model(pendulum_id)

    def interrupt(m: GMPO) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        model.learn(20, callback=AtStep(6, interrupt))
    model.save(tmp_path / "interrupted")
    loaded = GMPO.load(tmp_path / "interrupted", dataset=pendulum_id)
    assert loaded.num_timesteps == 6
    loaded.learn(4, reset_num_timesteps=False)
    assert loaded.num_timesteps == 10


@pytest.mark.parametrize("cls", [GMPO, GMPG])
@pytest.mark.parametrize("beta", [1.0, "auto_2"])
def test_resumption_is_exact(cls, beta, pendulum_id: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """N steps, save, load, M more steps == N + M steps in one go: parameters and optimizer state, bit for bit (with
    beta="auto": log beta and its optimizer too)."""
    kwargs = dict(TINY, seed=7, bc_steps=10, beta=beta) if cls is GMPG else dict(TINY, seed=7, beta=beta)
    straight = cls("GenerativePolicy", "Pendulum-v1", dataset=pendulum_id, **kwargs).learn(12)
    first = cls("GenerativePolicy", "Pendulum-v1", dataset=pendulum_id, **kwargs).learn(7)
    first.save(tmp_path / "half")
    th.manual_seed(12345)  # whatever happens in between
    resumed = cls.load(tmp_path / "half").learn(5, reset_num_timesteps=False)  # re-opens the dataset by its id
    assert resumed.num_timesteps == straight.num_timesteps == 12
    for name, state in straight.get_parameters().items():
        other = resumed.get_parameters()[name]
        flat_a, flat_b = _flatten(state), _flatten(other)
        assert flat_a.keys() == flat_b.keys()
        for key in flat_a:
            assert th.equal(flat_a[key], flat_b[key]), f"{name}: {key}"
    if beta != 1.0:
        assert "beta_optimizer" in straight.get_parameters() and th.equal(straight.log_beta, resumed.log_beta)
        assert float(straight.beta_value) != 2.0  # it adapted


def _flatten(tree, prefix: str = "") -> dict:  # type: ignore[no-untyped-def]
    if isinstance(tree, dict):
        out = {}
        for key, value in tree.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    if isinstance(tree, (list, tuple)):
        return _flatten(dict(enumerate(tree)), prefix)
    if tree is None or isinstance(tree, (str, bool)):
        return {prefix: th.tensor(hash(str(tree)))}
    return {prefix: tree if isinstance(tree, th.Tensor) else th.tensor(tree)}


# ---------------------------------------------------------------------------------------------------- untrusted files
def test_npz_with_objects_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "pickled.npz"
    np.savez(path, observations=np.array([{"evil": 1}], dtype=object), actions=np.zeros((1, 1)), rewards=np.zeros(1))
    with pytest.raises(DatasetError, match="Cannot read"):
        load_offline_data(str(path))


def test_truncated_hdf5_is_refused(tmp_path, d4rl_arrays) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "data.hdf5"
    with h5py.File(path, "w") as file:
        for key, value in d4rl_arrays.items():
            file.create_dataset(key, data=value)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DatasetError, match="Cannot read"):
        load_offline_data(str(path))


ARRAY_KEYS = ["observations", "actions", "rewards", "next_observations", "terminals", "timeouts"]
dtypes = st.sampled_from([np.float32, np.float64, np.int64, np.int8, np.bool_, np.uint8, np.complex64, np.str_])


@st.composite
def array_dicts(draw):  # type: ignore[no-untyped-def]
    n = draw(st.integers(0, 6))
    arrays = {}
    for key in draw(st.lists(st.sampled_from(ARRAY_KEYS), unique=True, min_size=0, max_size=6)):
        shape = draw(st.sampled_from([(n,), (n, 2), (n, 3), (n + 1, 2), (n, 2, 2), ()]))
        arrays[key] = draw(hnp.arrays(draw(dtypes), shape, elements=None))
    return arrays


def _check_result(data) -> None:  # type: ignore[no-untyped-def]
    assert len(data) > 0
    assert data.observations.shape == data.next_observations.shape and data.observations.dtype == np.float32
    assert data.actions.shape[0] == data.rewards.shape[0] == data.terminations.shape[0] == len(data)
    assert not (data.terminations & data.truncations).any()
    assert np.isfinite(data.observations).all() and np.isfinite(data.rewards).all()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(arrays=array_dicts())
def test_array_loader_loads_or_raises_dataset_error(arrays) -> None:  # type: ignore[no-untyped-def]
    try:
        data = load_offline_data(arrays)
    except DatasetError:
        return
    _check_result(data)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(arrays=array_dicts(), cut=st.integers(0, 400), flip=st.integers(0, 10_000))
def test_file_loaders_load_or_raise_dataset_error(arrays, cut: int, flip: int, tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("files")
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    raw = bytearray(buffer.getvalue())
    if raw and flip % 3:
        raw[flip % len(raw)] ^= 0xFF  # corrupt one byte
    if cut % 2:
        raw = raw[: max(0, len(raw) - cut)]  # or cut the file short
    (folder / "data.npz").write_bytes(bytes(raw))
    with h5py.File(folder / "data.hdf5", "w") as file:
        for key, value in arrays.items():
            if value.dtype.kind != "U":
                file.create_dataset(key, data=value)
    hdf5 = (folder / "data.hdf5").read_bytes()
    (folder / "data.hdf5").write_bytes(hdf5[: len(hdf5) - cut] if cut % 2 else hdf5)
    for name in ("data.npz", "data.hdf5"):
        try:
            data = load_offline_data(str(folder / name))
        except DatasetError:
            continue
        except zipfile.BadZipFile as error:  # pragma: no cover - would be a failure of ours
            raise AssertionError("BadZipFile escaped") from error
        _check_result(data)


# -------------------------------------------------------------------------------------------- the guard keeps what it checks
def test_parameters_are_checked_before_they_become_the_snapshot(pendulum_id: str) -> None:
    """Weights broken right at a check, with every loss so far finite: the check refuses them as a snapshot."""
    model = make_model(pendulum_id)
    saved = {}

    def remember(m: GMPO) -> None:
        saved.update({k: v.clone() for k, v in m.policy.state_dict().items()})

    def poison(m: GMPO) -> None:  # after step 10's update, before its check
        with th.no_grad():
            m.actor.net.last.weight.fill_(float("inf"))

    with pytest.raises(NonFiniteError, match=r"Non-finite parameters.*policy step 10.*state of policy step 5"):
        model.learn(20, log_interval=5, callback=[AtStep(5, remember), AtStep(10, poison)])
    assert model.num_timesteps == 5
    for key, value in model.policy.state_dict().items():
        assert th.equal(value, saved[key]), key


@pytest.mark.parametrize("phase", ["critic", "bc"])
def test_a_restore_rolls_back_counters_so_a_retry_repeats_the_steps(phase: str, pendulum_id: str) -> None:
    kwargs = {"critic_learning_rate": 1e30} if phase == "critic" else {"bc_learning_rate": 1e30}
    model = GMPG("GenerativePolicy", "Pendulum-v1", dataset=pendulum_id, **{**TINY, "bc_steps": 20, "seed": 0, **kwargs})
    with pytest.raises(NonFiniteError, match="restored"):
        model.learn(1, log_interval=5)
    assert all(th.isfinite(t).all() for t in model.policy.state_dict().values())
    assert (model.bc_steps_done, model.critic_steps_done) == ((20, 0) if phase == "critic" else (0, 0))
    assert model.num_timesteps == 0


def test_an_interrupt_checks_the_steps_not_yet_checked(pendulum_id: str) -> None:
    model = make_model(pendulum_id)

    def poison_then_interrupt(m: GMPO) -> None:
        with th.no_grad():
            m.actor.net.last.weight.fill_(float("nan"))
        raise KeyboardInterrupt

    with pytest.raises(NonFiniteError, match="interrupted policy"):
        model.learn(50, log_interval=20, callback=AtStep(3, poison_then_interrupt))
    assert all(th.isfinite(p).all() for p in model.policy.parameters())


def test_behaviour_cloning_interrupted_resumes_bit_for_bit(pendulum_id: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    kwargs = {**TINY, "seed": 3, "bc_steps": 12, "critic_steps": 4}
    straight = GMPG("GenerativePolicy", "Pendulum-v1", dataset=pendulum_id, **kwargs).pretrain()
    first = GMPG("GenerativePolicy", "Pendulum-v1", dataset=pendulum_id, **kwargs)

    def interrupting(phase, stats, step):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt  # Ctrl-C between two steps, at the first log table (behaviour-cloning step 5)

    first._dump_phase_logs = interrupting  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        first.pretrain(log_interval=5)
    assert first.bc_steps_done == 5
    del first._dump_phase_logs  # the patch itself must not be saved with the model
    first.save(tmp_path / "during_bc")
    th.manual_seed(999)
    resumed = GMPG.load(tmp_path / "during_bc").pretrain()
    for name, state in straight.get_parameters().items():
        flat_a, flat_b = _flatten(state), _flatten(resumed.get_parameters()[name])
        for key in flat_a:
            assert th.equal(flat_a[key], flat_b[key]), f"{name}: {key}"
