"""The IQL critic against d3rlpy's own IQLImpl on the same weights and batch."""

import pytest
import torch as th

from sb3_generative.critics.iql import IQLCritic


@pytest.fixture()
def d3rlpy_iql():  # type: ignore[no-untyped-def]
    import d3rlpy

    iql = d3rlpy.algos.IQLConfig(expectile=0.7, gamma=0.99, tau=0.005).create(device="cpu:0")
    iql.create_impl((5,), 2)
    return iql


def batch(seed: int = 0) -> dict[str, th.Tensor]:
    gen = th.Generator().manual_seed(seed)
    n = 64
    return dict(
        obs=th.randn(n, 5, generator=gen),
        actions=th.rand(n, 2, generator=gen) * 2 - 1,
        rewards=th.randn(n, 1, generator=gen),
        next_obs=th.randn(n, 5, generator=gen),
        dones=(th.rand(n, 1, generator=gen) < 0.2).float(),
    )


def minibatch(b: dict[str, th.Tensor]):  # type: ignore[no-untyped-def]
    """d3rlpy's batch type holding the same transitions."""
    from d3rlpy.torch_utility import TorchMiniBatch

    return TorchMiniBatch(
        observations=b["obs"],
        actions=b["actions"],
        rewards=b["rewards"],
        next_observations=b["next_obs"],
        next_actions=b["actions"],
        returns_to_go=b["rewards"],
        terminals=b["dones"],
        intervals=th.ones_like(b["rewards"]),
        device="cpu:0",
    )


def copy_weights(critic: IQLCritic, iql) -> None:  # type: ignore[no-untyped-def]
    for name in ("q_funcs", "targ_q_funcs", "value_func"):
        getattr(critic, name).load_state_dict(getattr(iql.impl.modules, name).state_dict())


def test_losses_equal_d3rlpy_iqlimpl(d3rlpy_iql) -> None:  # type: ignore[no-untyped-def]
    critic = IQLCritic(5, 2)
    copy_weights(critic, d3rlpy_iql)
    # make the target differ from the online Q so that using the wrong one would show
    with th.no_grad():
        for p in critic.targ_q_funcs.parameters():
            p.add_(0.05)
    copy_weights_target = critic.targ_q_funcs.state_dict()
    d3rlpy_iql.impl.modules.targ_q_funcs.load_state_dict(copy_weights_target)
    b = batch()
    mini = minibatch(b)
    ref = d3rlpy_iql.impl.compute_critic_loss(mini, d3rlpy_iql.impl.compute_target(mini))
    q_loss, v_loss = critic.losses(b["obs"], b["actions"], b["rewards"], b["next_obs"], b["dones"])
    assert q_loss.item() == pytest.approx(ref.q_loss.item(), rel=1e-6)
    assert v_loss.item() == pytest.approx(ref.v_loss.item(), rel=1e-6)


def test_update_matches_d3rlpy_update_critic(d3rlpy_iql) -> None:  # type: ignore[no-untyped-def]
    """One optimiser step plus the Polyak update give d3rlpy's parameters."""
    critic = IQLCritic(5, 2)
    copy_weights(critic, d3rlpy_iql)
    b = batch(1)
    mini = minibatch(b)
    d3rlpy_iql.impl.update_critic(mini)
    d3rlpy_iql.impl.update_critic_target()
    optimizer = th.optim.Adam(critic.trainable_parameters(), lr=3e-4)  # what the policy builds
    q_loss, v_loss = critic.losses(b["obs"], b["actions"], b["rewards"], b["next_obs"], b["dones"], gamma=0.99, expectile=0.7)
    optimizer.zero_grad()
    (q_loss + v_loss).backward()
    optimizer.step()
    critic.soft_update(0.005)
    for name in ("q_funcs", "targ_q_funcs", "value_func"):
        ours, theirs = getattr(critic, name).state_dict(), getattr(d3rlpy_iql.impl.modules, name).state_dict()
        for key in ours:
            assert th.allclose(ours[key], theirs[key], atol=1e-6), f"{name}.{key}"


def test_q_is_differentiable_in_the_action_and_advantage_is_not() -> None:
    critic = IQLCritic(5, 2)
    b = batch()
    actions = b["actions"].clone().requires_grad_(True)
    (grad,) = th.autograd.grad(critic.q_value(b["obs"], actions).sum(), actions)
    assert grad.abs().sum() > 0
    assert not critic.advantage(b["obs"], actions).requires_grad


@pytest.mark.parametrize("kwargs,match", [(dict(net_arch=[]), "critic_net_arch"), (dict(n_critics=0), "n_critics")])
def test_bad_sizes_are_refused(kwargs, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match):
        IQLCritic(5, 2, **kwargs)


def test_import_keeps_torch_settings() -> None:
    th.set_float32_matmul_precision("highest")
    IQLCritic(5, 2)
    assert th.get_float32_matmul_precision() == "highest"


def test_a_critic_with_layer_normalisation_trains_saves_and_is_told_apart(pendulum_id: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``critic_layer_norm=True`` (ReBRAC's ingredient) puts a LayerNorm after each hidden layer of Q and V; the model
    trains, loads safely, and a critic without it is refused by a model with it."""
    from torch import nn

    from sb3_generative import GMPO
    from tests.helpers import TINY_POLICY, make_model

    model = make_model(GMPO, pendulum_id, policy_kwargs={**TINY_POLICY, "critic_layer_norm": True}).learn(2)
    norms = [m for m in model.critic.modules() if isinstance(m, nn.LayerNorm)]
    assert len(norms) == 2 * (2 + 2 + 1)  # two hidden layers in each of two Q heads, their two targets, and V
    model.save(tmp_path / "ln")
    loaded = GMPO.load(tmp_path / "ln", safe=True)
    assert loaded.policy.critic_layer_norm and any(isinstance(m, nn.LayerNorm) for m in loaded.critic.modules())
    plain = make_model(GMPO, pendulum_id)
    with pytest.raises(ValueError, match="does not fit this model"):
        make_model(GMPO, pendulum_id, policy_kwargs={**TINY_POLICY, "critic_layer_norm": True}, critic=plain)
    with pytest.raises(ValueError, match="critic_layer_norm must be True or False"):
        make_model(GMPO, pendulum_id, policy_kwargs={**TINY_POLICY, "critic_layer_norm": 1})
