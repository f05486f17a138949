"""The offline replay buffer: a whole dataset as flat tensors on the training device."""

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from sb3_generative.common.datasets import OfflineData


class OfflineReplayBuffer:
    """A fixed dataset held on the training device; a minibatch is one random-index gather.

    Actions are stored in SB3's scaled space [-1, 1] and rewards already multiplied by ``reward_scale``.
    ``dones`` are the terminations only: truncated steps keep bootstrapping from their next observation.

    :param data: the flattened dataset
    :param action_space: the model's Box action space (any shape; actions are stored flat), used to scale actions to [-1, 1]
    :param device: training device
    :param reward_scale: factor applied to the rewards
    :param seed: seed of the buffer's own index generator (None: drawn from torch's global generator)
    """

    def __init__(
        self,
        data: OfflineData,
        action_space: spaces.Box,
        device: th.device | str = "cpu",
        reward_scale: float = 1.0,
        seed: int | None = None,
    ) -> None:
        self.device = th.device(device)
        low, high = action_space.low.reshape(-1).astype(np.float32), action_space.high.reshape(-1).astype(np.float32)
        scaled = 2.0 * (data.actions - low) / (high - low) - 1.0

        def to_tensor(array: np.ndarray) -> th.Tensor:
            return th.as_tensor(np.ascontiguousarray(array, dtype=np.float32), device=self.device)

        self.observations = to_tensor(data.observations)
        self.actions = to_tensor(np.clip(scaled, -1.0, 1.0))
        self.next_observations = to_tensor(data.next_observations)
        self.rewards = to_tensor(data.rewards.reshape(-1, 1) * reward_scale)
        self.dones = to_tensor(data.terminations.reshape(-1, 1))
        self.size = int(self.rewards.shape[0])
        self.generator = th.Generator(device=self.device)
        self.generator.manual_seed(int(seed) if seed is not None else int(th.randint(0, 2**62, ()).item()))

    def __len__(self) -> int:
        return self.size

    def sample_indices(self, batch_size: int) -> th.Tensor:
        """Uniform random indices (with replacement), drawn on the device."""
        return th.randint(0, self.size, (batch_size,), device=self.device, generator=self.generator)

    def sample(self, batch_size: int) -> ReplayBufferSamples:
        """A minibatch of transitions.

        :param batch_size: number of transitions
        :return: observations, scaled actions, next observations, dones (terminations), scaled rewards
        """
        idx = self.sample_indices(batch_size)
        return ReplayBufferSamples(
            self.observations[idx], self.actions[idx], self.next_observations[idx], self.dones[idx], self.rewards[idx]
        )
