"""Conditional velocity / noise network of GenerativeRL (``TemporalSpatialResidualNet`` in its
``grl/neural_network/``).

A U-shaped residual MLP over the noisy action. Time enters through fixed Gaussian-Fourier features, the state
through a small embedding; both are merged into one "time-and-condition" vector that is added inside every
residual block.
"""

import math

import torch as th
from torch import nn


class GaussianFourierTimeEmbedding(nn.Module):
    """Fixed random Fourier features of time: ``[sin(2 pi W t), cos(2 pi W t)]`` with ``W ~ N(0, scale^2)``.

    :param embed_dim: output size (even)
    :param scale: standard deviation of the frequencies (reference: 30)
    """

    freqs: th.Tensor

    def __init__(self, embed_dim: int = 32, scale: float = 30.0) -> None:
        super().__init__()
        if embed_dim % 2:
            raise ValueError(f"time embedding size must be even, got {embed_dim}")
        # A buffer, not a trained parameter: the reference keeps it fixed (requires_grad=False).
        self.register_buffer("freqs", th.randn(embed_dim // 2) * scale * 2.0 * math.pi)

    def forward(self, t: th.Tensor) -> th.Tensor:
        angles = t.reshape(-1, 1) * self.freqs
        return th.cat([th.sin(angles), th.cos(angles)], dim=-1)


class ResidualBlock(nn.Module):
    """``h = SiLU(W1 x) + W_e SiLU(e)``, ``out = SiLU(W2 h) + skip(x)`` (``TemporalSpatialResBlock``).

    :param in_dim: input size
    :param out_dim: output size
    :param emb_dim: size of the time-and-condition embedding
    """

    def __init__(self, in_dim: int, out_dim: int, emb_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_dim, out_dim)
        self.emb = nn.Linear(emb_dim, out_dim)
        self.fc2 = nn.Linear(out_dim, out_dim)
        self.skip = nn.Linear(in_dim, out_dim) if in_dim != out_dim else nn.Identity()

    def forward(self, x: th.Tensor, emb_act: th.Tensor) -> th.Tensor:
        return self.forward_projected(x, self.emb(emb_act))

    def forward_projected(self, x: th.Tensor, projection: th.Tensor) -> th.Tensor:
        """The block given ``W_e SiLU(e)`` already computed (it depends on time and state only, not on ``x``)."""
        # functional calls on the layers' own weights: the same products without nn.Module's per-call overhead,
        # which dominates a batch-1 ODE solve on a CPU
        h = nn.functional.silu(nn.functional.linear(x, self.fc1.weight, self.fc1.bias)) + projection
        out = nn.functional.silu(nn.functional.linear(h, self.fc2.weight, self.fc2.bias))
        return out + (nn.functional.linear(x, self.skip.weight, self.skip.bias) if isinstance(self.skip, nn.Linear) else x)


class TemporalSpatialResidualNet(nn.Module):
    """U-shaped residual MLP ``f(t, x, s)`` with skips; ``hidden_sizes=[512, 256, 128]`` in the paper.

    Blocks: ``x -> h0``, down ``h_i -> h_{i+1}``, middle ``h_k -> h_k``, up over concatenated skips back to
    ``h0``, then ``Linear(2 h0 -> d)`` on ``cat(u, d0)``.

    :param action_dim: size of x and of the output
    :param obs_dim: size of the conditioning state
    :param hidden_sizes: widths of the U (at least one)
    :param time_embed_dim: Gaussian-Fourier features of time
    :param cond_embed_dim: state embedding size
    :param emb_dim: size of the merged time-and-condition embedding
    :param fourier_scale: scale of the Fourier frequencies
    """

    def __init__(
        self,
        action_dim: int,
        obs_dim: int,
        hidden_sizes: list[int] | tuple[int, ...] = (512, 256, 128),
        time_embed_dim: int = 32,
        cond_embed_dim: int = 32,
        emb_dim: int = 128,
        fourier_scale: float = 30.0,
    ) -> None:
        super().__init__()
        hidden = [int(h) for h in hidden_sizes]
        if not hidden:
            raise ValueError("hidden_sizes needs at least one width")
        self.time_embed = GaussianFourierTimeEmbedding(time_embed_dim, fourier_scale)
        self.cond_embed = nn.Sequential(nn.Linear(obs_dim, cond_embed_dim), nn.SiLU())
        self.merge = nn.Sequential(nn.Linear(time_embed_dim + cond_embed_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.first = ResidualBlock(action_dim, hidden[0], emb_dim)
        self.down = nn.ModuleList(ResidualBlock(hidden[i], hidden[i + 1], emb_dim) for i in range(len(hidden) - 1))
        self.middle = ResidualBlock(hidden[-1], hidden[-1], emb_dim)
        self.up = nn.ModuleList(ResidualBlock(2 * hidden[i], hidden[i - 1], emb_dim) for i in range(len(hidden) - 1, 0, -1))
        self.last = nn.Linear(2 * hidden[0], action_dim)

    def embed(self, t: th.Tensor, obs: th.Tensor, cond: th.Tensor | None = None) -> th.Tensor:
        """The time-and-condition embedding after its SiLU, shared by all blocks, shape (B, emb_dim).

        :param cond: ``cond_embed(obs)`` if already computed (it is the same at every step of an ODE solve)
        """
        cond = self.cond_embed(obs) if cond is None else cond
        t = t.expand(cond.shape[0]) if t.dim() == 0 else t
        emb = self.merge(th.cat([self.time_embed(t), cond], dim=-1))
        return nn.functional.silu(emb)

    @property
    def blocks(self) -> list[ResidualBlock]:
        """The residual blocks in the order :meth:`forward_projected` takes their projections."""
        return [self.first, *self.down, self.middle, *self.up]

    def projections(self, t: th.Tensor, obs: th.Tensor, cond: th.Tensor | None = None) -> list[th.Tensor]:
        """Each block's ``W_e SiLU(embedding)``: everything that depends on time and state but not on ``x``.

        An ODE solve on a fixed grid can compute these for all its evaluation times in one batched pass.
        """
        emb = self.embed(t, obs, cond)
        return [block.emb(emb) for block in self.blocks]

    def forward(self, t: th.Tensor, x: th.Tensor, obs: th.Tensor, cond: th.Tensor | None = None) -> th.Tensor:
        """Network output at native time ``t`` (scalar or (B,)), noisy action ``x`` (B, d), state ``obs`` (B, n);
        ``cond`` is ``cond_embed(obs)`` when the caller computed it once for a whole solve."""
        return self.forward_projected(x, self.projections(t, obs, cond))

    def forward_projected(self, x: th.Tensor, projections: list[th.Tensor]) -> th.Tensor:
        """Network output given :meth:`projections` of the same time and state."""
        blocks, n_down = self.blocks, len(self.down)
        skips = [blocks[0].forward_projected(x, projections[0])]
        for i in range(1, 1 + n_down):
            skips.append(blocks[i].forward_projected(skips[-1], projections[i]))
        h = blocks[1 + n_down].forward_projected(skips[-1], projections[1 + n_down])
        for i, skip in enumerate(reversed(skips[1:]), start=2 + n_down):
            h = blocks[i].forward_projected(th.cat([h, skip], dim=-1), projections[i])
        return nn.functional.linear(th.cat([h, skips[0]], dim=-1), self.last.weight, self.last.bias)
