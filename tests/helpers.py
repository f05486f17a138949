"""Tiny shared settings of the contract tests, which run every SB3 behaviour for both algorithms."""

from typing import Any

from sb3_generative import GMPG, GMPO
from sb3_generative.common.offline_algorithm import OfflineAlgorithm

# small networks and budgets, so the whole suite stays fast on 2 cores
TINY_POLICY: dict[str, Any] = dict(net_arch=[16, 16], time_embed_dim=8, cond_embed_dim=8, emb_dim=16, critic_net_arch=[16, 16])
TINY: dict[str, Any] = dict(batch_size=32, critic_steps=20, critic_batch_size=32, policy_kwargs=TINY_POLICY)
#: what each algorithm adds to TINY (GMPG: a short behaviour cloning, 3-step solves)
EXTRA: dict[type[OfflineAlgorithm], dict[str, Any]] = {GMPO: {}, GMPG: dict(bc_steps=20, n_gradient_steps=3)}
ALGOS = [GMPO, GMPG]


def tiny(cls: type[OfflineAlgorithm], **kwargs: Any) -> dict[str, Any]:
    """The tiny settings of ``cls`` with ``kwargs`` on top (seed 0 on the CPU unless given)."""
    return {**TINY, **EXTRA[cls], "seed": 0, "device": "cpu", **kwargs}


def make_model(cls: type[OfflineAlgorithm], dataset: Any, env: Any = "Pendulum-v1", **kwargs: Any) -> OfflineAlgorithm:
    """A tiny ``cls`` on ``dataset``.

    :param cls: GMPO or GMPG
    :param dataset: any dataset form
    :param env: env or id (None: from the data)
    :param kwargs: settings on top of the tiny ones
    """
    return cls("GenerativePolicy", env, dataset=dataset, **tiny(cls, **kwargs))
