"""GMPO's own behaviour: its loss weights, critic reuse, optimizer defaults (the SB3 contract tests are shared with
GMPG: test_run, test_predict, test_save_load, test_callbacks, test_logger, test_spaces, test_deterministic)."""

import pytest
import torch as th

from sb3_generative import GMPO
from tests.helpers import TINY, TINY_POLICY


def make_model(pendulum_id: str, **kwargs) -> GMPO:  # type: ignore[no-untyped-def]
    params = {**TINY, "seed": 0, "device": "cpu", **kwargs}
    return GMPO("GenerativePolicy", kwargs.pop("env", "Pendulum-v1"), dataset=pendulum_id, **params)


@pytest.fixture()
def trained(pendulum_id: str) -> GMPO:
    return make_model(pendulum_id).learn(30)


# ---------------------------------------------------------------------------------------------------- critic reuse
def test_critic_handed_to_another_model(trained: GMPO, pendulum_id: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    other = make_model(pendulum_id, critic=trained.critic, seed=1)
    assert other.critic_steps_done == other.critic_steps
    for key, value in trained.critic.state_dict().items():
        assert th.equal(value, other.critic.state_dict()[key]), key
    trained.save(tmp_path / "with_critic")
    from_file = make_model(pendulum_id, critic=str(tmp_path / "with_critic.zip"), seed=2)
    assert th.equal(from_file.critic.value_func._fc.weight, trained.critic.value_func._fc.weight)
    from_model = make_model(pendulum_id, critic=trained, seed=2)
    assert th.equal(from_model.critic.value_func._fc.weight, trained.critic.value_func._fc.weight)
    before = other.critic.state_dict()["q_funcs.0._fc.weight"].clone()
    other.learn(5)
    assert th.equal(before, other.critic.state_dict()["q_funcs.0._fc.weight"])  # frozen, not retrained


def test_critic_of_another_size_is_refused(trained: GMPO, pendulum_id: str) -> None:
    with pytest.raises(ValueError, match="does not fit"):
        make_model(pendulum_id, critic=trained.critic, policy_kwargs={**TINY_POLICY, "critic_net_arch": [8]})


def test_gmpo_weights_follow_the_advantage(trained: GMPO) -> None:
    """The loss weights are min(exp(beta A), clamp) of the frozen critic, without gradient."""
    batch = trained.replay_buffer.sample(64)
    obs = trained.policy.normalize_obs(batch.observations)
    advantage = trained.critic.advantage(obs, batch.actions)
    trained.beta, trained.weight_clamp = 2.0, 1.5
    th.manual_seed(0)
    loss, stats = trained.policy_loss(obs, batch.actions)
    th.manual_seed(0)
    matching = trained.actor.per_sample_loss(batch.actions, obs)
    expected = (th.exp(2.0 * advantage).clamp(max=1.5) * matching).mean()
    assert th.allclose(loss, expected)
    assert stats["weight_clamped_fraction"] == pytest.approx((th.exp(2.0 * advantage) > 1.5).float().mean().item())
    clamped = th.exp(2.0 * advantage).clamp(max=1.5)
    assert stats["weight_ess"] == pytest.approx((clamped.sum() ** 2 / (clamped**2).sum() / 64).item(), rel=1e-5)
    assert 1 / 64 <= stats["weight_ess"] <= 1.0
    trained.critic.zero_grad(set_to_none=True)
    loss.backward()
    assert all(p.grad is None for p in trained.critic.parameters())  # weights carry no gradient


def test_optimizers_are_fused_unless_told_otherwise(pendulum_id: str) -> None:
    model = make_model(pendulum_id)
    assert model.policy.optimizer.defaults["fused"] and model.critic.optimizer.defaults["fused"]
    plain = make_model(pendulum_id, policy_kwargs={**TINY_POLICY, "optimizer_kwargs": dict(fused=False)})
    assert not plain.policy.optimizer.defaults["fused"]
    plain.learn(3)  # the user's choice trains, and is what a saved model rebuilds
    assert plain.policy.optimizer_kwargs == dict(fused=False)


# ---------------------------------------------------------------------------------------------------- warm start
def test_behaviour_cloning_warm_start(pendulum_id: str) -> None:
    """``bc_steps`` fits the actor to the data before the critic, with its own optimizer; the paper's default (0)
    leaves the actor at its initialisation until the weighted phase."""
    cold = make_model(pendulum_id)
    warm = make_model(pendulum_id, bc_steps=200, bc_batch_size=128, bc_learning_rate=3e-3)
    batch = warm.replay_buffer.sample(256)
    obs = warm.policy.normalize_obs(batch.observations)

    def bc_loss(model: GMPO) -> float:
        th.manual_seed(1)
        with th.no_grad():
            return model.actor.per_sample_loss(batch.actions, obs).mean().item()

    initial = {k: v.clone() for k, v in cold.actor.state_dict().items()}
    assert bc_loss(cold) == pytest.approx(bc_loss(warm))  # the same seed, the same initial actor
    cold.pretrain()
    warm.pretrain()
    assert all(th.equal(initial[k], v) for k, v in cold.actor.state_dict().items())
    assert (cold.bc_steps_done, warm.bc_steps_done) == (0, 200) and warm.critic_steps_done == warm.critic_steps
    assert bc_loss(warm) < 0.9 * bc_loss(cold)
    assert not warm.policy.optimizer.state  # the weighted phase starts with fresh Adam moments
    assert warm.policy.bc_optimizer.state
    warm.learn(3)
    assert warm.bc_steps_done == 200 and warm.num_timesteps == 3  # not run again
