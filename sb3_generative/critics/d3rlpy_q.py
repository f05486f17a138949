"""A critic trained by d3rlpy (ReBRAC, TD3+BC, IQL, CQL, ...) copied into the package's :class:`IQLCritic`.

d3rlpy's continuous Q-functions and ours are the same modules (both built by ``create_continuous_q_function`` with a
``VectorEncoderFactory``), but they see other inputs: d3rlpy scales the raw observations and actions with its own
scalers, ours sees ``(obs - mean) / std`` and actions scaled to [-1, 1]. Both maps are elementwise affine, so the
difference folds exactly into the first linear layer: with d3rlpy's inputs ``x_d = o A + B`` and ``a_d = a_raw C + D``
and ours ``o = x s + m``, ``a_raw = a (high - low) / 2 + (high + low) / 2``, the layer ``W_x x_d + W_a a_d + b``
equals ``W_x' x + W_a' a + b'`` with ``W_x' = W_x diag(s A)``, ``W_a' = W_a diag(C (high - low) / 2)`` and
``b' = b + W_x (m A + B) + W_a ((high + low) / 2 C + D)``. The copied critic's Q values are checked against d3rlpy's own
``predict_value`` before it is accepted.
"""

from typing import Any

import numpy as np
import torch as th

from sb3_generative.critics.iql import IQLCritic

#: the first linear layer of d3rlpy's vector encoders (``VectorEncoder`` / ``VectorEncoderWithAction``)
FIRST_LAYER = "_encoder._layers.0"


def is_d3rlpy_algo(source: Any) -> bool:
    """Whether ``source`` is one of d3rlpy's Q-learning algorithms (``QLearningAlgoBase``)."""
    return type(source).__module__.startswith("d3rlpy.") and hasattr(source, "predict_value")


def elementwise_affine(transform: Any, width: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """``(A, B)`` with ``transform(x) = x A + B`` for every x, found by probing; raise if the map is not of that form.

    :param transform: a d3rlpy scaler's ``transform_numpy``, or None (the identity)
    :param width: size of its inputs
    :param what: "observation" or "action", for the error
    """
    if transform is None:
        return np.ones(width), np.zeros(width)
    zero, one = transform(np.zeros((1, width))), transform(np.ones((1, width)))
    shift, scale = zero[0].astype(np.float64), (one - zero)[0].astype(np.float64)
    probe = np.linspace(-3.0, 3.0, width)[None]
    if not np.allclose(transform(probe)[0], probe[0] * scale + shift, rtol=1e-5, atol=1e-5):
        raise ValueError(f"The d3rlpy critic's {what} scaler is not an elementwise affine map; it cannot be copied")
    return scale, shift


def fold_first_layer(
    weight: th.Tensor, bias: th.Tensor, in_scale: np.ndarray, in_shift: np.ndarray
) -> tuple[th.Tensor, th.Tensor]:
    """The layer ``W (x * in_scale + in_shift) + b`` as ``W' x + b'`` (see the module's docstring).

    :param weight: (out, in) weight of the layer
    :param bias: (out,) bias
    :param in_scale: (in,) factor of the inputs
    :param in_shift: (in,) shift of the inputs
    """
    scale = th.as_tensor(in_scale, dtype=th.float64)
    shift = th.as_tensor(in_shift, dtype=th.float64)
    w64 = weight.detach().double().cpu()
    new_bias = bias.detach().double().cpu() + w64 @ shift
    return (w64 * scale).to(weight.dtype), new_bias.to(bias.dtype)


def input_maps(algo: Any, obs_mean: np.ndarray, obs_std: np.ndarray, low: np.ndarray, high: np.ndarray) -> tuple[
    tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]
]:  # fmt: skip
    """Our (observation, action) inputs mapped to d3rlpy's, each as ``(scale, shift)`` of an elementwise affine map.

    :param algo: the d3rlpy algorithm
    :param obs_mean: our observation mean
    :param obs_std: our observation standard deviation
    :param low: the action space's lower bounds
    :param high: the action space's upper bounds
    """
    config = algo.config
    obs_scaler, action_scaler = config.observation_scaler, config.action_scaler
    obs_a, obs_b = elementwise_affine(obs_scaler.transform_numpy if obs_scaler else None, len(obs_mean), "observation")
    act_c, act_d = elementwise_affine(action_scaler.transform_numpy if action_scaler else None, len(low), "action")
    half, middle = (high - low) / 2.0, (high + low) / 2.0
    return (obs_std * obs_a, obs_mean * obs_a + obs_b), (half * act_c, middle * act_c + act_d)


def folded_state(modules: th.nn.Module, obs_map: tuple[np.ndarray, np.ndarray], act_map: tuple[np.ndarray, np.ndarray]
                 | None) -> dict[str, th.Tensor]:  # fmt: skip
    """A d3rlpy Q ensemble's (or value function's) state with our input maps folded into each first layer.

    :param modules: d3rlpy's ``q_funcs`` (a ModuleList) or ``value_func``
    :param obs_map: ``(scale, shift)`` of the observations
    :param act_map: ``(scale, shift)`` of the actions (None for a value function)
    """
    state = {key: value.detach().cpu().clone() for key, value in modules.state_dict().items()}
    scale, shift = obs_map
    if act_map is not None:  # a Q-function's first layer sees [observation, action]
        scale, shift = np.concatenate([scale, act_map[0]]), np.concatenate([shift, act_map[1]])
    for key in [k for k in state if k.endswith(f"{FIRST_LAYER}.weight")]:
        prefix = key[: -len("weight")]
        if state[key].shape[1] != len(scale):
            raise ValueError(
                f"The d3rlpy critic takes inputs of width {state[key].shape[1]}, this model's states and actions "
                f"are {len(scale)} wide"
            )
        state[key], state[prefix + "bias"] = fold_first_layer(state[key], state[prefix + "bias"], scale, shift)
    return state


def architecture(q_funcs: Any) -> str:
    """d3rlpy's Q ensemble described as this package's settings (for the error when it does not fit)."""
    layers = list(q_funcs[0]._encoder._layers)
    widths = [layer.out_features for layer in layers if isinstance(layer, th.nn.Linear)]
    layer_norm = any(isinstance(layer, th.nn.LayerNorm) for layer in layers)
    return f"policy_kwargs=dict(critic_net_arch={widths}, critic_layer_norm={layer_norm}, n_critics={len(q_funcs)})"


def d3rlpy_critic_state(algo: Any, critic: IQLCritic, obs_mean: th.Tensor, obs_std: th.Tensor, low: np.ndarray,
                        high: np.ndarray) -> tuple[dict[str, th.Tensor], bool]:  # fmt: skip
    """Our critic's state from a trained d3rlpy algorithm: its Q ensemble as Q and as the target (d3rlpy's target
    too where it has one), its value function where it has one (IQL), else our V as it is.

    :param algo: a built d3rlpy Q-learning algorithm with continuous actions
    :param critic: the critic the state is for
    :param obs_mean: our observation mean (flat)
    :param obs_std: our observation standard deviation (flat)
    :param low: the action space's lower bounds (flat)
    :param high: the action space's upper bounds (flat)
    :return: the state dict and whether it holds a trained value function
    """
    modules = getattr(getattr(algo, "impl", None), "modules", None)
    if modules is None or not hasattr(modules, "q_funcs"):
        raise ValueError(f"The d3rlpy algorithm {type(algo).__name__} has no Q-functions yet: fit or build it first")
    if not type(modules.q_funcs[0]).__name__ == "ContinuousMeanQFunction":
        raise ValueError(
            f"The d3rlpy critic's Q-functions are {type(modules.q_funcs[0]).__name__}: only mean Q-functions on "
            "continuous actions (d3rlpy's default) can be copied"
        )
    if critic.encoder is not None:
        raise ValueError("A d3rlpy critic sees flat observations: it cannot be used with a features extractor")
    mean, std = obs_mean.double().cpu().numpy(), obs_std.double().cpu().numpy()
    obs_map, act_map = input_maps(algo, mean, std, low.astype(np.float64), high.astype(np.float64))
    q_state = folded_state(modules.q_funcs, obs_map, act_map)
    targ = getattr(modules, "targ_q_funcs", None)
    targ_state = q_state if targ is None else folded_state(targ, obs_map, act_map)
    value = getattr(modules, "value_func", None)
    v_state = critic.value_func.state_dict() if value is None else folded_state(value, obs_map, None)
    state = {f"q_funcs.{k}": v for k, v in q_state.items()}
    state.update({f"targ_q_funcs.{k}": v for k, v in targ_state.items()})
    state.update({f"value_func.{k}": v for k, v in v_state.items()})
    return state, value is not None


def check_copied_q(algo: Any, critic: IQLCritic, obs_mean: th.Tensor, obs_std: th.Tensor, low: np.ndarray,
                   high: np.ndarray, seed: int = 0) -> None:  # fmt: skip
    """Raise unless the copied critic gives d3rlpy's own Q values (``predict_value``, the ensemble's mean) on random
    states around the data's statistics and random actions in the box.

    :param algo: the d3rlpy algorithm
    :param critic: our critic, holding the copied state
    :param obs_mean: our observation mean
    :param obs_std: our observation standard deviation
    :param low: the action space's lower bounds (flat)
    :param high: the action space's upper bounds (flat)
    :param seed: seed of the random states and actions
    """
    rng = np.random.default_rng(seed)
    mean, std = obs_mean.cpu().numpy(), obs_std.cpu().numpy()
    normalized = rng.standard_normal((64, len(mean))).astype(np.float32)
    scaled_actions = rng.uniform(-1.0, 1.0, (64, len(low))).astype(np.float32)
    raw_obs = normalized * std + mean
    raw_actions = (scaled_actions + 1.0) * (high - low) / 2.0 + low
    expected = np.asarray(algo.predict_value(raw_obs, raw_actions.astype(np.float32)), dtype=np.float64).reshape(-1)
    device = next(critic.parameters()).device
    with th.no_grad():
        ours = critic.q_value(th.as_tensor(normalized, device=device), th.as_tensor(scaled_actions, device=device), "mean")
    ours_np = ours.reshape(-1).double().cpu().numpy()
    tolerance = 1e-3 * max(1.0, float(np.abs(expected).max()))
    if not np.allclose(ours_np, expected, atol=tolerance, rtol=1e-3):
        worst = float(np.abs(ours_np - expected).max())
        raise ValueError(
            f"The copied d3rlpy critic disagrees with d3rlpy's own Q values (largest difference {worst:.4g}): its "
            "networks are not built like this model's (activation, encoder or Q-function type)"
        )
