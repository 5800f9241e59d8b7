"""A PyTorch PoseFormerV2 written for the parity tests.

Independent of the Flax code (written from the architecture facts, not from
upstream), and state-dict compatible with the official checkpoints: the same
parameter names and shapes, so `load_state_dict(strict=True)` accepts an
official ``model_pos`` dict with the ``module.`` prefix stripped.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def dct_ii(x: torch.Tensor) -> torch.Tensor:
  """Unnormalised DCT-II along the last axis, straight from the definition."""
  n = x.shape[-1]
  k = torch.arange(n, dtype=torch.float64)[:, None]
  m = torch.arange(n, dtype=torch.float64)[None, :]
  basis = 2.0 * torch.cos(math.pi * k * (2 * m + 1) / (2 * n))
  return (x.double() @ basis.T).to(x.dtype)


def idct_ii(x: torch.Tensor) -> torch.Tensor:
  """Inverse of `dct_ii` along the last axis (solved, not a closed form)."""
  n = x.shape[-1]
  k = torch.arange(n, dtype=torch.float64)[:, None]
  m = torch.arange(n, dtype=torch.float64)[None, :]
  basis = 2.0 * torch.cos(math.pi * k * (2 * m + 1) / (2 * n))
  return (x.double() @ torch.linalg.inv(basis).T).to(x.dtype)


class DropPath(nn.Module):
  def __init__(self, p: float):
    super().__init__()
    self.p = p

  def forward(self, x):
    if not self.training or self.p == 0.0:
      return x
    keep = 1.0 - self.p
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask / keep


class Mlp(nn.Module):
  def __init__(self, dim, hidden, gelu_approximate="none"):
    super().__init__()
    self.fc1 = nn.Linear(dim, hidden)
    self.act = nn.GELU(approximate=gelu_approximate)
    self.fc2 = nn.Linear(hidden, dim)

  def forward(self, x):
    return self.fc2(self.act(self.fc1(x)))


class FreqMlp(Mlp):
  def forward(self, x):  # x (B, L, D): transform along L
    x = dct_ii(x.transpose(1, 2)).transpose(1, 2)
    x = super().forward(x)
    return idct_ii(x.transpose(1, 2)).transpose(1, 2)


class Attention(nn.Module):
  def __init__(self, dim, heads):
    super().__init__()
    self.heads = heads
    self.qkv = nn.Linear(dim, 3 * dim, bias=True)
    self.proj = nn.Linear(dim, dim)

  def forward(self, x):
    b, n, d = x.shape
    qkv = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    attn = (q @ k.transpose(-1, -2)) * (d // self.heads) ** -0.5
    out = attn.softmax(-1) @ v
    return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
  def __init__(self, dim, heads, ratio, dp, gelu_approximate="none"):
    super().__init__()
    self.norm1 = nn.LayerNorm(dim, eps=1e-6)
    self.attn = Attention(dim, heads)
    self.drop_path = DropPath(dp)
    self.norm2 = nn.LayerNorm(dim, eps=1e-6)
    self.mlp = Mlp(dim, int(dim * ratio), gelu_approximate)

  def forward(self, x):
    x = x + self.drop_path(self.attn(self.norm1(x)))
    return x + self.drop_path(self.mlp(self.norm2(x)))


class MixedBlock(nn.Module):
  def __init__(self, dim, heads, ratio, dp, gelu_approximate="none", split="half"):
    super().__init__()
    self.norm1 = nn.LayerNorm(dim, eps=1e-6)
    self.attn = Attention(dim, heads)
    self.drop_path = DropPath(dp)
    self.norm2 = nn.LayerNorm(dim, eps=1e-6)
    self.mlp1 = Mlp(dim, int(dim * ratio), gelu_approximate)
    self.norm3 = nn.LayerNorm(dim, eps=1e-6)
    self.mlp2 = FreqMlp(dim, int(dim * ratio), gelu_approximate)
    self.split = split  # 'half' (official) or an int token index (for mismatch tests)

  def forward(self, x):
    x = x + self.drop_path(self.attn(self.norm1(x)))
    s = x.shape[1] // 2 if self.split == "half" else self.split
    a, b = x[:, :s], x[:, s:]
    a = a + self.drop_path(self.mlp1(self.norm2(a)))
    b = b + self.drop_path(self.mlp2(self.norm3(b)))
    return torch.cat([a, b], dim=1)


class PoseTransformerV2(nn.Module):
  """(B, F, J, 2) -> (B, 1, J, 3). Key names as the official checkpoints."""

  def __init__(self, num_frame=27, kept_frames=3, kept_coeffs=3, num_joints=17,
               embed_dim_ratio=32, depth=4, heads=8, mlp_ratio=2.0,
               drop_path_rate=0.0, gelu_approximate="none", split="half"):
    super().__init__()
    c, d = embed_dim_ratio, embed_dim_ratio * num_joints
    self.num_frame, self.f, self.n = num_frame, kept_frames, kept_coeffs
    self.Joint_embedding = nn.Linear(2, c)
    self.Freq_embedding = nn.Linear(2 * num_joints, d)
    self.Spatial_pos_embed = nn.Parameter(torch.zeros(1, num_joints, c))
    self.Temporal_pos_embed = nn.Parameter(torch.zeros(1, kept_frames, d))
    self.Temporal_pos_embed_ = nn.Parameter(torch.zeros(1, kept_coeffs, d))
    rates = torch.linspace(0, drop_path_rate, depth).tolist()
    self.Spatial_blocks = nn.ModuleList(
        [Block(c, heads, mlp_ratio, r, gelu_approximate) for r in rates])
    self.blocks = nn.ModuleList(
        [MixedBlock(d, heads, mlp_ratio, r, gelu_approximate, split) for r in rates])
    self.Spatial_norm = nn.LayerNorm(c, eps=1e-6)
    self.Temporal_norm = nn.LayerNorm(d, eps=1e-6)
    self.weighted_mean = nn.Conv1d(kept_coeffs, 1, 1)
    self.weighted_mean_ = nn.Conv1d(kept_frames, 1, 1)
    self.head = nn.Sequential(nn.LayerNorm(2 * d), nn.Linear(2 * d, 3 * num_joints))

  def forward(self, x):
    b, frames, j, _ = x.shape
    centre = (frames - 1) // 2
    s = x[:, centre - self.f // 2: centre + self.f // 2 + 1].reshape(b * self.f, j, 2)
    s = self.Joint_embedding(s) + self.Spatial_pos_embed
    for blk in self.Spatial_blocks:
      s = blk(s)
    s = self.Spatial_norm(s).reshape(b, self.f, -1)
    q = dct_ii(x.permute(0, 2, 3, 1))[..., : self.n]  # (B, J, 2, n)
    q = self.Freq_embedding(q.permute(0, 3, 1, 2).reshape(b, self.n, -1))
    t = torch.cat([q + self.Temporal_pos_embed_, s + self.Temporal_pos_embed], dim=1)
    for blk in self.blocks:
      t = blk(t)
    t = self.Temporal_norm(t)
    pooled = torch.cat([self.weighted_mean(t[:, : self.n]), self.weighted_mean_(t[:, self.n:])], -1)
    return self.head(pooled).view(b, 1, j, 3)
