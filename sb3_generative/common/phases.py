"""The pre-training phases (the IQL critic, GMPG's behaviour cloning) as data: a name, a budget, a counter and a
short step function, run by one loop in :meth:`~sb3_generative.common.offline_algorithm.OfflineAlgorithm.pretrain`."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch as th
from stable_baselines3.common.callbacks import ProgressBarCallback
from stable_baselines3.common.type_aliases import ReplayBufferSamples


@dataclass
class Phase:
    """One pre-training phase.

    :param name: short name, the prefix of its log keys (``critic/q_loss``) and its progress label
    :param title: what the progress display and error messages call it
    :param total: steps the phase runs over the model's life
    :param counter: name of the algorithm's attribute counting the steps done (saved with the model)
    :param batch_size: minibatch size
    :param step: one gradient step on a minibatch, returning detached statistics (no host synchronisation)
    :param watched: keys of those statistics that must stay finite
    """

    name: str
    title: str
    total: int
    counter: str
    batch_size: int
    step: Callable[[ReplayBufferSamples], dict[str, th.Tensor]]
    watched: tuple[str, ...]


def accumulate(totals: dict[str, th.Tensor], stats: dict[str, th.Tensor]) -> None:
    """Add detached statistics to running sums on the device (``_count`` counts the additions).

    :param totals: running sums, updated in place
    :param stats: one step's statistics
    """
    for key, value in stats.items():
        value = value.detach().float()  # bf16 under autocast
        totals[key] = totals[key] + value if key in totals else value.clone()
    totals["_count"] = totals.get("_count", th.zeros(())) + 1


def means(totals: dict[str, th.Tensor]) -> dict[str, float]:
    """The means of running sums (one host synchronisation for all of them); empties ``totals``.

    :param totals: running sums made by :func:`accumulate`
    """
    count = totals.pop("_count", None)
    if count is None or not totals:
        totals.clear()
        return {}
    values = (th.stack([v.to(count.device) for v in totals.values()]) / count).tolist()
    result = dict(zip(totals, values))
    totals.clear()
    return result


class PhaseProgress:
    """SB3's rich progress bar for one phase, labelled with the phase; a no-op when progress bars are off.

    :param enabled: show it
    :param total: steps to run
    :param title: the phase's name, shown before the bar
    """

    def __init__(self, enabled: bool, total: int, title: str) -> None:
        self.enabled, self.total, self.title = enabled, total, title
        self.bar: Any = None

    def __enter__(self) -> "PhaseProgress":
        if self.enabled:
            from tqdm.rich import tqdm  # what SB3's ProgressBarCallback uses

            self.bar = tqdm(total=self.total, desc=self.title, unit="step")
        return self

    def update(self, n: int = 1) -> None:
        """Advance by ``n`` steps."""
        if self.bar is not None:
            self.bar.update(n)

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.close()


class NamedProgressBar(ProgressBarCallback):
    """SB3's progress bar for the policy phase, labelled like the pre-training phases' bars.

    :param title: the phase's name, shown before the bar
    """

    def __init__(self, title: str) -> None:
        super().__init__()
        self.title = title

    def _on_training_start(self) -> None:
        from tqdm.rich import tqdm

        self.pbar = tqdm(total=self.locals["total_timesteps"] - self.model.num_timesteps, desc=self.title, unit="step")
