"""PoseFormerV2 (Zhao et al., CVPR 2023) in Flax linen.

Reading guide, in the order of the paper's Fig. 2:

* `SpatialBranch`  — time domain: the f centre frames, each a set of J joint
  tokens of width C=embed_dim_ratio, through `depth` transformer `Block`s.
* `FrequencyBranch` — frequency domain: the first n DCT coefficients of the
  whole F-frame input, embedded to width D = J*C.
* `MixedBlock`     — the joint time/frequency transformer over the n+f tokens;
  its feed-forward part is split at T//2 into a plain MLP and a `FreqMlp`
  (MLP in the DCT domain).
* `PoseFormerV2`   — glues them together and regresses the centre frame's pose.

Shapes: input (B, F, J, 2) normalised screen coordinates; output (B, 1, J, 3)
camera-space metres, root-relative.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from poseformer_jax import dct

Dtype = Any

_SQRT_HALF = 0.7071067811865476


def gelu(x: jax.Array) -> jax.Array:
  """GELU in erf form, x * (1 + erf(x / sqrt 2)) / 2, as torch.nn.GELU().

  The tanh approximation differs by up to 1e-3 per activation, which breaks parity with
  the original weights. Written with `erf` rather than `nn.gelu(approximate=False)`,
  which lowers through `erfc`: same values within 1e-6, 2.5x faster on XLA:CPU.
  """
  return x * (0.5 + 0.5 * jax.lax.erf(x * jnp.asarray(_SQRT_HALF, x.dtype)))

BLOCK_NORM_EPS = 1e-6  # every block norm, Spatial_norm and Temporal_norm
HEAD_NORM_EPS = 1e-5  # head.0 is a default-eps torch LayerNorm


class Dense(nn.Dense):
  """`nn.Dense` on the last axis, as one matrix product over the flattened leading axes.

  Same parameters and values as `nn.Dense`. (..., K) -> (..., features). Why: the
  gradient of nn.Dense's contraction over (B, N, K) contracts two axes for the kernel,
  which XLA:CPU computes after copying a transposed output gradient; over (B*N, K) the
  kernel gradient is one GEMM on the rows as they lie (`benchmarks/README.md`).
  """

  def __call__(self, x: jax.Array) -> jax.Array:
    y = super().__call__(x.reshape(-1, x.shape[-1]))
    return y.reshape(x.shape[:-1] + (self.features,))


class DropPath(nn.Module):
  """Stochastic depth: drops the whole residual branch per sample.

  Active only when ``deterministic`` is False; then draws from the 'dropout'
  RNG stream and rescales kept samples by 1/keep_prob (as timm's DropPath).
  """

  rate: float

  @nn.compact
  def __call__(self, x: jax.Array, deterministic: bool) -> jax.Array:
    if deterministic or self.rate == 0.0:
      return x
    keep = 1.0 - self.rate
    mask = jax.random.bernoulli(
        self.make_rng("dropout"), keep, (x.shape[0],) + (1,) * (x.ndim - 1))
    return jnp.where(mask, x / keep, jnp.zeros_like(x))


class Mlp(nn.Module):
  """Linear -> GELU -> Linear, on the last axis. (..., D) -> (..., D)."""

  hidden_dim: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    out_dim = x.shape[-1]
    x = Dense(self.hidden_dim, dtype=self.dtype, name="fc1")(x)
    x = gelu(x)
    return Dense(out_dim, dtype=self.dtype, name="fc2")(x)


class FreqMlp(nn.Module):
  """An `Mlp` applied in the DCT domain of the token axis.

  x (B, L, D) -> DCT over L -> Mlp over D -> IDCT over L -> (B, L, D).
  """

  hidden_dim: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    length = x.shape[1]
    fwd = jnp.asarray(dct.dct_matrix(length), self.dtype)
    inv = jnp.asarray(dct.idct_matrix(length), self.dtype)
    x = jnp.einsum("kl,bld->bkd", fwd, x)
    x = Mlp(self.hidden_dim, dtype=self.dtype, name="mlp")(x)
    return jnp.einsum("lk,bkd->bld", inv, x)


ATTENTION_FORMS = ("dot", "broadcast")


class Attention(nn.Module):
  """Multi-head self-attention with one fused qkv projection. (B, N, D) -> (B, N, D).

  `form` says how the per-head products q.k and w.v are written, same values
  (to float rounding): 'dot', batched dot products; 'broadcast', a broadcast
  multiply and a sum over the head dimension. For the spatial branch (head dim
  4, 17 tokens) the dots are thousands of tiny matrix products, and XLA:CPU runs
  the broadcast form ~3x faster forward and backward with `cpu_tuning`'s options
  (its backward is slower under XLA's default ones). In the mixed blocks (head
  dim 68) the products are (T, T) per head: with few tokens (T = 4 or 6) the dots
  are again many tiny ones and the broadcast form is faster; with 18 or 54 its
  (B, T, T, H, 68) products are large and the dots win.
  """

  num_heads: int
  qkv_bias: bool = True
  dtype: Dtype = jnp.float32
  form: str = "dot"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b, n, d = x.shape
    head_dim = d // self.num_heads
    qkv = Dense(3 * d, use_bias=self.qkv_bias, dtype=self.dtype, name="qkv")(x)
    qkv = qkv.reshape(b, n, 3, self.num_heads, head_dim)
    scale = head_dim ** -0.5
    if self.form == "broadcast":
      # `split`'s gradient is one concatenate; three index slices' is three pads and
      # adds (spatial branch gradient on XLA:CPU 210 -> 181 ms, same values).
      q, k, v = (t[:, :, 0] for t in jnp.split(qkv, 3, axis=2))  # (B, N, H, Dh)
      logits = jnp.sum(q[:, :, None] * k[:, None], axis=-1) * scale  # (B, Nq, Nk, H)
      weights = jax.nn.softmax(logits.astype(jnp.float32), axis=2).astype(self.dtype)
      out = jnp.sum(weights[..., None] * v[:, None], axis=2)  # (B, Nq, H, Dh)
    elif self.form == "dot":
      q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # (B, N, H, Dh)
      logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) * scale
      weights = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(self.dtype)
      out = jnp.einsum("bhqk,bkhd->bqhd", weights, v)
    else:
      raise ValueError(f"Attention form {self.form!r} must be one of {ATTENTION_FORMS}")
    return Dense(d, dtype=self.dtype, name="proj")(out.reshape(b, n, d))


def _layer_norm(name: str, dtype: Dtype, eps: float = BLOCK_NORM_EPS) -> nn.LayerNorm:
  return nn.LayerNorm(epsilon=eps, dtype=dtype, name=name)


class _BlockFields(nn.Module):
  """The hyper-parameters every transformer block of the model shares."""

  num_heads: int
  mlp_ratio: float
  qkv_bias: bool
  drop_path: float
  dtype: Dtype = jnp.float32
  attention: str = "dot"  # `Attention.form`


class Block(_BlockFields):
  """Pre-norm transformer block (attention + MLP), used by the spatial branch."""

  @nn.compact
  def __call__(self, x: jax.Array, deterministic: bool) -> jax.Array:
    d = x.shape[-1]
    drop = DropPath(self.drop_path)
    h = Attention(self.num_heads, self.qkv_bias, self.dtype, self.attention, name="attn")(
        _layer_norm("norm1", self.dtype)(x))
    x = x + drop(h, deterministic)
    h = Mlp(int(d * self.mlp_ratio), self.dtype, name="mlp")(
        _layer_norm("norm2", self.dtype)(x))
    return x + drop(h, deterministic)


class MixedBlock(_BlockFields):
  """Time/frequency transformer block over the n+f tokens.

  Attention over all T tokens, then a split feed-forward: the first T//2
  tokens go through a plain `Mlp`, the rest through a `FreqMlp`. The split is
  at T//2, not at the frequency/time boundary, exactly as upstream (for the
  27_1_3 model one frequency token goes to the FreqMlp together with the
  single time token).
  """

  @nn.compact
  def __call__(self, x: jax.Array, deterministic: bool) -> jax.Array:
    t, d = x.shape[1], x.shape[-1]
    hidden = int(d * self.mlp_ratio)
    drop = DropPath(self.drop_path)
    h = Attention(self.num_heads, self.qkv_bias, self.dtype, self.attention, name="attn")(
        _layer_norm("norm1", self.dtype)(x))
    x = x + drop(h, deterministic)
    split = t // 2
    x1, x2 = x[:, :split], x[:, split:]
    x1 = x1 + drop(Mlp(hidden, self.dtype, name="mlp1")(
        _layer_norm("norm2", self.dtype)(x1)), deterministic)
    x2 = x2 + drop(FreqMlp(hidden, self.dtype, name="mlp2")(
        _layer_norm("norm3", self.dtype)(x2)), deterministic)
    return jnp.concatenate([x1, x2], axis=1)


def drop_path_rates(rate: float, depth: int) -> list[float]:
  """Linear stochastic-depth schedule 0..rate over `depth` layers (as torch.linspace)."""
  if depth == 1:
    return [0.0]
  return [rate * i / (depth - 1) for i in range(depth)]


class SpatialBranch(nn.Module):
  """Time-domain branch: per-frame joint tokens through `depth` Blocks.

  (B, f, J, 2) -> (B, f, J*C), joint-major.
  """

  embed_dim_ratio: int
  depth: int
  num_heads: int
  mlp_ratio: float
  qkv_bias: bool
  drop_path_rate: float
  dtype: Dtype = jnp.float32
  attention: str = "dot"  # `Attention.form`

  @nn.compact
  def __call__(self, x: jax.Array, deterministic: bool) -> jax.Array:
    b, f, j, _ = x.shape
    c = self.embed_dim_ratio
    x = x.reshape(b * f, j, 2)
    x = Dense(c, dtype=self.dtype, name="joint_embedding")(x)
    pos = self.param("pos_embed", nn.initializers.zeros, (1, j, c))
    x = x + pos.astype(self.dtype)
    for i, rate in enumerate(drop_path_rates(self.drop_path_rate, self.depth)):
      x = Block(self.num_heads, self.mlp_ratio, self.qkv_bias, rate, self.dtype,
                self.attention, name=f"block_{i}")(x, deterministic)
    x = _layer_norm("norm", self.dtype)(x)
    return x.reshape(b, f, j * c)


class FrequencyBranch(nn.Module):
  """Frequency branch: the first n DCT-II coefficients along time, embedded.

  (B, F, J, 2) -> (B, n, J*C). Coefficients are flattened joint-major, x/y minor.
  """

  kept_coeffs: int
  embed_dim: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b, f, j, c = x.shape
    basis = jnp.asarray(dct.dct_matrix(f)[: self.kept_coeffs], self.dtype)  # (n, F)
    coeffs = jnp.einsum("kf,bfjc->bkjc", basis, x.astype(self.dtype))
    coeffs = coeffs.reshape(b, self.kept_coeffs, j * c)
    return Dense(self.embed_dim, dtype=self.dtype, name="freq_embedding")(coeffs)


class WeightedMean(nn.Module):
  """Learned weighted sum over tokens plus a bias (upstream: Conv1d(N->1, k=1)).

  (B, N, D) -> (B, 1, D).
  """

  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    w = self.param("kernel", nn.initializers.lecun_normal(batch_axis=()), (x.shape[1], 1))
    bias = self.param("bias", nn.initializers.zeros, (1,))
    out = jnp.einsum("bnd,n->bd", x, w[:, 0].astype(self.dtype)) + bias.astype(self.dtype)
    return out[:, None, :]


class PoseFormerV2(nn.Module):
  """PoseFormerV2: 2D keypoint window -> 3D pose of its centre frame.

  Attributes mirror the config's `model` block: `num_frames` F (receptive
  field), `kept_frames` f (odd, centre frames for the spatial branch),
  `kept_coeffs` n (DCT coefficients), `num_joints` J, `embed_dim_ratio` C
  (temporal width is J*C), `depth`, `num_heads`, `mlp_ratio`, `qkv_bias`,
  `drop_path_rate`; `dtype` is the compute dtype (parameters stay float32);
  `spatial_attention` and `mixed_attention` the `Attention.form` of the spatial
  branch's and of the mixed blocks' attention (same parameters, same values;
  `cpu_tuning` picks the faster form on a CPU).

  Call: ``model.apply({'params': p}, x, deterministic=True)`` with x of shape
  (B, F, J, 2) in normalised screen coordinates -> (B, 1, J, 3), metres,
  camera frame, root-relative. With ``deterministic=False`` stochastic depth is
  active and an RNG named 'dropout' must be given.
  """

  num_frames: int = 27
  kept_frames: int = 3
  kept_coeffs: int = 3
  num_joints: int = 17
  embed_dim_ratio: int = 32
  depth: int = 4
  num_heads: int = 8
  mlp_ratio: float = 2.0
  qkv_bias: bool = True
  drop_path_rate: float = 0.1
  dtype: Dtype = jnp.float32
  spatial_attention: str = "dot"
  mixed_attention: str = "dot"
  out_joints: int | None = None  # joints the head regresses (None: num_joints)

  kind = "pose"

  @property
  def output_joints(self) -> int:
    """Joints of the output, (B, 1, output_joints, 3)."""
    return self.num_joints if self.out_joints is None else int(self.out_joints)

  def setup(self):
    if self.kept_frames > self.num_frames or self.kept_frames < 1:
      raise ValueError(
          f"kept_frames={self.kept_frames} must be in [1, num_frames={self.num_frames}]")
    for name in ("spatial_attention", "mixed_attention"):
      if getattr(self, name) not in ATTENTION_FORMS:
        raise ValueError(f"{name}={getattr(self, name)!r} must be one of {ATTENTION_FORMS}")
    if self.kept_coeffs > self.num_frames or self.kept_coeffs < 1:
      raise ValueError(
          f"kept_coeffs={self.kept_coeffs} must be in [1, num_frames={self.num_frames}]")
    embed_dim = self.embed_dim_ratio * self.num_joints
    self.spatial = SpatialBranch(
        self.embed_dim_ratio, self.depth, self.num_heads, self.mlp_ratio,
        self.qkv_bias, self.drop_path_rate, self.dtype, self.spatial_attention, name="spatial")
    self.frequency = FrequencyBranch(self.kept_coeffs, embed_dim, self.dtype, name="frequency")
    self.time_pos_embed = self.param(
        "time_pos_embed", nn.initializers.zeros, (1, self.kept_frames, embed_dim))
    self.freq_pos_embed = self.param(
        "freq_pos_embed", nn.initializers.zeros, (1, self.kept_coeffs, embed_dim))
    self.mixed_blocks = [
        MixedBlock(self.num_heads, self.mlp_ratio, self.qkv_bias, rate, self.dtype,
                   self.mixed_attention, name=f"mixed_block_{i}")
        for i, rate in enumerate(drop_path_rates(self.drop_path_rate, self.depth))]
    self.temporal_norm = _layer_norm("temporal_norm", self.dtype)
    self.freq_mean = WeightedMean(self.dtype, name="freq_mean")
    self.time_mean = WeightedMean(self.dtype, name="time_mean")
    self.head_norm = _layer_norm("head_norm", self.dtype, HEAD_NORM_EPS)
    self.head = Dense(3 * self.output_joints, dtype=self.dtype, name="head")

  def centre_frames(self, x: jax.Array) -> jax.Array:
    """The f frames around the centre index (F-1)//2. (B, F, J, 2) -> (B, f, J, 2)."""
    start = centre_start(self.num_frames, self.kept_frames)
    return x[:, start:start + self.kept_frames]

  def __call__(self, x: jax.Array, deterministic: bool = True) -> jax.Array:
    b, f, j, c = x.shape
    if (f, j, c) != (self.num_frames, self.num_joints, 2):
      raise ValueError(
          f"expected input (B, {self.num_frames}, {self.num_joints}, 2), got {x.shape}")
    x = x.astype(self.dtype)
    time_tokens = self.spatial(self.centre_frames(x), deterministic)  # (B, f, D)
    return self.from_time_tokens(x, time_tokens, deterministic)

  def frame_tokens(self, frames: jax.Array, deterministic: bool = True) -> jax.Array:
    """The spatial branch on single frames. (N, J, 2) normalised screen coords -> (N, D).

    The spatial branch sees each kept frame alone, so a window's time tokens are
    the tokens of its f centre frames: sliding windows over a sequence can
    compute each frame's once (`poseformer_jax.inference`) instead of f times.
    """
    x = frames.astype(self.dtype)[:, None]
    return self.spatial(x, deterministic)[:, 0]

  def from_time_tokens(self, x: jax.Array, time_tokens: jax.Array,
                       deterministic: bool = True) -> jax.Array:
    """The rest of the network: DCT branch, mixed blocks, heads.

    x (B, F, J, 2) windows and time_tokens (B, f, D) (the spatial branch on
    their centre frames) -> (B, 1, J, 3), metres, root-relative.
    """
    b, j = x.shape[0], self.output_joints
    freq_tokens = self.frequency(x.astype(self.dtype))  # (B, n, D)
    tokens = jnp.concatenate([
        freq_tokens + self.freq_pos_embed.astype(self.dtype),
        time_tokens.astype(self.dtype) + self.time_pos_embed.astype(self.dtype)], axis=1)
    for blk in self.mixed_blocks:
      tokens = blk(tokens, deterministic)
    tokens = self.temporal_norm(tokens)
    n = self.kept_coeffs
    pooled = jnp.concatenate(
        [self.freq_mean(tokens[:, :n]), self.time_mean(tokens[:, n:])], axis=-1)  # (B, 1, 2D)
    out = self.head(self.head_norm(pooled))
    return out.reshape(b, 1, j, 3).astype(jnp.float32)


def centre_start(num_frames: int, kept_frames: int) -> int:
  """Index in the F-frame window of the first of the f centre frames the spatial branch sees."""
  return (int(num_frames) - 1) // 2 - int(kept_frames) // 2


def from_config(model_cfg) -> PoseFormerV2:
  """Builds the pose model from a config's `model` block (ConfigDict or dict).

  `architectures.from_config` builds any of the project's networks (pose or trajectory).
  """
  cfg = dict(model_cfg)
  kind = cfg.pop("kind", "pose")
  if kind != "pose":
    raise ValueError(f"model.kind {kind!r} is not a PoseFormerV2 pose model")
  dtype = cfg.pop("dtype", "float32")
  return PoseFormerV2(dtype=jnp.dtype(dtype), **cfg)
