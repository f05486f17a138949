"""Observations of any space SB3's off-policy algorithms take (a Box of any shape, images, a Dict of Boxes) as one flat
float vector, and back.

Every observation is stored, sampled and normalised as one flat row (a Dict's keys flattened and concatenated in the
space's key order), so the data, the replay buffer, the statistics, checkpoints and compiled regions have one code
path whatever the space. The networks see the structure again: :class:`ObservationEncoder` unflattens a batch of rows,
preprocesses it as SB3 does (``preprocess_obs``: images divided by 255) and runs an SB3 features extractor
(``FlattenExtractor``, ``CombinedExtractor``, ``NatureCNN`` or the user's own ``BaseFeaturesExtractor``).
"""

from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.preprocessing import is_image_space, preprocess_obs
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, FlattenExtractor
from torch import nn


class ObservationLayout:
    """Where each part of an observation lies in its flat row.

    :param observation_space: a Box (any shape) or a Dict of Boxes
    """

    def __init__(self, observation_space: spaces.Space) -> None:
        self.space = observation_space
        parts = observation_space.spaces if isinstance(observation_space, spaces.Dict) else {None: observation_space}
        self.keys: list[str | None] = list(parts)
        self.shapes = [tuple(space.shape or ()) for space in parts.values()]
        self.sizes = [int(np.prod(shape)) for shape in self.shapes]
        self.flat_dim = int(sum(self.sizes))
        #: flat positions that belong to images (SB3 scales them by 1/255; they are never standardised)
        self.image_mask = np.concatenate(
            [np.full(size, is_image_space(space, check_channels=False)) for size, space in zip(self.sizes, parts.values())]
        )

    @property
    def is_dict(self) -> bool:
        return isinstance(self.space, spaces.Dict)

    def flatten(self, observations: Any, name: str = "observations") -> np.ndarray:
        """A batch of observations (an array of shape ``(N, *shape)``, or a dict of such arrays) as ``(N, flat_dim)``
        float32.

        :param observations: the batch
        :param name: how errors name it
        :return: the flat rows
        """
        if self.is_dict:
            if not isinstance(observations, dict):
                raise TypeError(
                    f"{name} must be a dict of arrays with the keys {self.keys}, got {type(observations).__name__}"
                )
            missing = [key for key in self.keys if key not in observations]
            if missing:
                raise KeyError(f"{name} lack the key(s) {missing} of the observation space {self.space}")
            arrays = [np.asarray(observations[key]) for key in self.keys]
        else:
            arrays = [np.asarray(observations)]
        rows = {array.shape[0] for array in arrays}
        if len(rows) != 1:
            raise ValueError(f"the keys of {name} hold different numbers of rows: {sorted(rows)}")
        flat = []
        for key, shape, array in zip(self.keys, self.shapes, arrays):
            if array.shape[1:] != shape:
                where = f"{name}[{key!r}]" if key is not None else name
                raise ValueError(f"{where} has rows of shape {array.shape[1:]}, the observation space {shape}")
            flat.append(array.reshape(array.shape[0], int(np.prod(shape))).astype(np.float32))
        return np.concatenate(flat, axis=1)

    def flatten_tensor(self, observation: th.Tensor | dict[str, th.Tensor]) -> th.Tensor:
        """The same as :meth:`flatten` for a batch of tensors (what SB3's ``obs_to_tensor`` makes in ``predict``)."""
        parts = [observation[str(key)] for key in self.keys] if isinstance(observation, dict) else [observation]
        return th.cat([part.reshape(part.shape[0], -1).float() for part in parts], dim=1)

    def unflatten(self, flat: th.Tensor) -> th.Tensor | dict[str, th.Tensor]:
        """Flat rows ``(B, flat_dim)`` as the space's structure: a tensor ``(B, *shape)`` or a dict of them."""
        pieces = flat.split(self.sizes, dim=1)
        shaped = [piece.reshape(flat.shape[0], *shape) for piece, shape in zip(pieces, self.shapes)]
        if not self.is_dict:
            return shaped[0]
        return {str(key): value for key, value in zip(self.keys, shaped)}


class ObservationEncoder(nn.Module):
    """Flat (normalised) observation rows to features: unflatten, SB3's ``preprocess_obs``, a features extractor.

    With SB3's ``FlattenExtractor`` on a 1-D Box it passes the rows through unchanged (what the networks saw before
    features extractors existed here, so older files load and give the same actions).

    :param observation_space: the model's observation space
    :param extractor: an SB3 features extractor built for that space
    :param normalize_images: divide image observations by 255 (SB3's ``normalize_images``)
    """

    def __init__(
        self, observation_space: spaces.Space, extractor: BaseFeaturesExtractor, normalize_images: bool = True
    ) -> None:
        super().__init__()
        self.layout = ObservationLayout(observation_space)
        self.extractor, self.normalize_images = extractor, normalize_images
        self.features_dim = int(extractor.features_dim)
        self.identity = (
            isinstance(extractor, FlattenExtractor)
            and isinstance(observation_space, spaces.Box)
            and len(observation_space.shape or ()) == 1
        )

    def forward(self, flat: th.Tensor) -> th.Tensor:
        if self.identity:
            return flat
        observation = preprocess_obs(self.layout.unflatten(flat), self.layout.space, self.normalize_images)
        return self.extractor(observation)
