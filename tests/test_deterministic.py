"""SB3's determinism test (``test_deterministic.py`` in SB3), for both algorithms: same seed, same training."""

import numpy as np
import pytest
import torch as th

from tests.helpers import ALGOS, make_model


@pytest.mark.parametrize("cls", ALGOS)
def test_same_seed_same_training(cls, pendulum_id: str) -> None:  # type: ignore[no-untyped-def]
    def run(seed: int) -> tuple[dict, np.ndarray]:
        model = make_model(cls, pendulum_id, seed=seed).learn(5)
        obs = np.zeros((4, 3), dtype=np.float32)
        return model.policy.state_dict(), model.predict(obs, deterministic=False)[0]

    (state_a, act_a), (state_b, act_b) = run(3), run(3)
    for key in state_a:
        assert th.equal(state_a[key], state_b[key]), key
    np.testing.assert_array_equal(act_a, act_b)
    state_c, _ = run(4)
    assert not th.equal(state_a["actor.net.last.weight"], state_c["actor.net.last.weight"])
