"""Model-level properties: DCT matrices, drop path, batch independence, shapes."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from poseformer_jax import config_lib, cpu_tuning, dct
from poseformer_jax import model as model_lib

from conftest import require


def _dct_loop(x):
  n = len(x)
  return np.array([2 * sum(x[m] * np.cos(np.pi * k * (2 * m + 1) / (2 * n)) for m in range(n))
                   for k in range(n)])


@pytest.mark.parametrize("n", [1, 2, 3, 4, 9, 27, 81])
def test_dct_matches_definition_and_inverts(n):
  rng = np.random.default_rng(n)
  x = rng.normal(size=n)
  np.testing.assert_allclose(dct.dct_matrix(n, np.float64) @ x, _dct_loop(x), atol=1e-10)
  np.testing.assert_allclose(dct.idct_matrix(n, np.float64) @ _dct_loop(x), x, atol=1e-10)
  eye = dct.idct_matrix(n, np.float64) @ dct.dct_matrix(n, np.float64)
  np.testing.assert_allclose(eye, np.eye(n), atol=1e-10)


def test_dct_matches_torch_reference_formula():
  torch = require("torch")
  from torch_reference import dct_ii, idct_ii
  x = np.random.default_rng(0).normal(size=(5, 243))
  ours = x @ dct.dct_matrix(243, np.float64).T
  np.testing.assert_allclose(ours, dct_ii(torch.from_numpy(x)).numpy(), atol=1e-8)
  np.testing.assert_allclose(ours @ dct.idct_matrix(243, np.float64).T, x, atol=1e-9)
  np.testing.assert_allclose(idct_ii(torch.from_numpy(ours)).numpy(), x, atol=1e-9)


def _tiny(drop_path_rate=0.1, frames=9, kept=3, coeffs=3):
  return model_lib.PoseFormerV2(num_frames=frames, kept_frames=kept, kept_coeffs=coeffs,
                                embed_dim_ratio=8, depth=2, num_heads=2,
                                drop_path_rate=drop_path_rate)


def test_drop_path_only_when_not_deterministic():
  model = _tiny()
  x = jax.random.normal(jax.random.PRNGKey(0), (16, 9, 17, 2))
  params = model.init(jax.random.PRNGKey(1), x)["params"]
  det = model.apply({"params": params}, x, deterministic=True)
  det2 = model.apply({"params": params}, x, deterministic=True, rngs={"dropout": jax.random.PRNGKey(5)})
  np.testing.assert_array_equal(det, det2)  # the rng is ignored when deterministic
  a = model.apply({"params": params}, x, deterministic=False, rngs={"dropout": jax.random.PRNGKey(2)})
  b = model.apply({"params": params}, x, deterministic=False, rngs={"dropout": jax.random.PRNGKey(3)})
  assert np.abs(np.asarray(a) - np.asarray(det)).max() > 1e-4
  assert np.abs(np.asarray(a) - np.asarray(b)).max() > 1e-4
  # With rate 0 training mode is the deterministic forward.
  model0 = _tiny(drop_path_rate=0.0)
  c = model0.apply({"params": params}, x, deterministic=False, rngs={"dropout": jax.random.PRNGKey(2)})
  np.testing.assert_allclose(c, det, atol=1e-6)


def test_drop_path_rates_are_linear():
  assert model_lib.drop_path_rates(0.1, 4) == pytest.approx([0.0, 0.1 / 3, 0.2 / 3, 0.1])
  assert model_lib.drop_path_rates(0.1, 1) == [0.0]


def test_output_independent_of_batch_composition():
  model = _tiny()
  x = jax.random.normal(jax.random.PRNGKey(0), (8, 9, 17, 2))
  params = model.init(jax.random.PRNGKey(1), x)["params"]
  apply = jax.jit(model.apply)  # one compile per batch size, not one per op
  with jax.default_matmul_precision("highest"):
    full = np.asarray(apply({"params": params}, x))
    for i in (0, 5):
      alone = np.asarray(apply({"params": params}, x[i:i + 1]))
      np.testing.assert_allclose(alone[0], full[i], rtol=1e-5, atol=1e-5)
    perm = np.array([3, 1, 7, 0, 2, 6, 4, 5])
    shuffled = np.asarray(apply({"params": params}, x[perm]))
    np.testing.assert_allclose(shuffled, full[perm], rtol=1e-5, atol=1e-5)


def test_shapes_params_and_input_validation():
  cfg = config_lib.base_config()
  config_lib.set_variant(cfg, "81_9_9")
  model = model_lib.from_config(cfg.model)
  x = jnp.zeros((2, 81, 17, 2))
  params = jax.eval_shape(model.init, jax.random.PRNGKey(0), x)["params"]
  count = sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(params))
  assert 14.3e6 < count < 14.5e6  # the paper's ~14.35 M
  assert jax.eval_shape(model.apply, {"params": params}, x).shape == (2, 1, 17, 3)
  with pytest.raises(ValueError, match="expected input"):
    jax.eval_shape(model.apply, {"params": params}, jnp.zeros((2, 27, 17, 2)))


def test_unknown_variant_is_a_clear_error():
  from poseformer_jax.errors import ConfigError
  with pytest.raises(ConfigError, match="unknown variant '27_9_9'"):
    config_lib.set_variant(config_lib.base_config(), "27_9_9")


def test_bfloat16_compute_keeps_float32_params():
  model = model_lib.PoseFormerV2(num_frames=9, kept_frames=3, kept_coeffs=3, embed_dim_ratio=8,
                                 depth=1, num_heads=2, dtype=jnp.bfloat16)
  x = jax.random.normal(jax.random.PRNGKey(0), (4, 9, 17, 2))
  params = model.init(jax.random.PRNGKey(1), x)["params"]
  assert all(p.dtype == jnp.float32 for p in jax.tree_util.tree_leaves(params))
  out = model.apply({"params": params}, x)
  ref = _tiny(frames=9).clone(embed_dim_ratio=8, depth=1, num_heads=2).apply({"params": params}, x)
  assert out.dtype == jnp.float32
  assert np.abs(np.asarray(out) - np.asarray(ref)).max() < 0.05 * (np.abs(np.asarray(ref)).max() + 1)


def test_flops_close_to_paper():
  from poseformer_jax import flops
  for name in ("27_1_3", "81_9_9"):
    cfg = config_lib.base_config()
    config_lib.set_variant(cfg, name)
    ratio = flops.forward_flops(cfg.model, batch=4) / 1e6 / config_lib.PAPER_MFLOPS[name]
    assert 1.0 < ratio < 1.08, (name, ratio)


def test_counted_matmul_flops_are_xlas_count_less_the_element_wise_work():
  """`flops.matmul_flops` (from the config alone) is 0.97-1.0x XLA's count, per variant."""
  from poseformer_jax import flops
  for name in ("27_1_3", "243_27_27"):
    cfg = config_lib.base_config()
    config_lib.set_variant(cfg, name)
    ratio = flops.matmul_flops(cfg.model) / flops.forward_flops(cfg.model, batch=1)
    assert 0.97 < ratio < 1.0, (name, ratio)
  # It follows each dimension: twice the depth is about twice the work.
  deeper = config_lib.base_config()
  config_lib.set_variant(deeper, "243_27_27")
  deeper.model.depth = 8
  assert 1.9 < flops.matmul_flops(deeper.model) / flops.matmul_flops(cfg.model) < 2.0


def test_gelu_is_the_exact_erf_form():
  """The model's GELU (written with erf) equals x * Phi(x) in float64 and jax's erfc form."""
  from math import erf, sqrt
  x = np.linspace(-9.0, 9.0, 2001, dtype=np.float32)
  exact = np.array([v * 0.5 * (1.0 + erf(v / sqrt(2.0))) for v in x.astype(np.float64)])
  got = np.asarray(model_lib.gelu(jnp.asarray(x)))
  np.testing.assert_allclose(got, exact, rtol=0, atol=2e-6)
  np.testing.assert_allclose(got, np.asarray(nn.gelu(jnp.asarray(x), approximate=False)), atol=2e-6)
  # Its gradient is Phi(x) + x * phi(x).
  grad = np.asarray(jax.vmap(jax.grad(model_lib.gelu))(jnp.asarray(x)))
  want = 0.5 * (1 + np.array([erf(v / sqrt(2.0)) for v in x.astype(np.float64)])) + \
      x * np.exp(-0.5 * x.astype(np.float64) ** 2) / np.sqrt(2 * np.pi)
  np.testing.assert_allclose(grad, want, rtol=0, atol=5e-6)


@pytest.mark.parametrize("forms", [{"spatial_attention": "broadcast"},
                                   {"mixed_attention": "broadcast"},
                                   {"spatial_attention": "broadcast", "mixed_attention": "broadcast"}])
def test_broadcast_attention_equals_the_dot_form(forms):
  """The spatial branch's and the mixed blocks' attention written as broadcast products
  give the dot form's outputs and gradients from the same parameters (only another way to
  compute them); an unknown form is a clear error."""
  model = _tiny(drop_path_rate=0.0)
  bcast = model.clone(**forms)
  x = jax.random.normal(jax.random.PRNGKey(0), (8, 9, 17, 2))
  params = model.init(jax.random.PRNGKey(1), x)["params"]
  assert jax.tree.structure(bcast.init(jax.random.PRNGKey(1), x)["params"]) == \
      jax.tree.structure(params)
  want = jax.jit(model.apply)({"params": params}, x)
  got = jax.jit(bcast.apply)({"params": params}, x)
  assert np.abs(np.asarray(want)).max() > 1e-2  # not trivially zero
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  # The form really changes the program (so the comparison above compares two ways).
  jaxpr = str(jax.make_jaxpr(bcast.apply)({"params": params}, x))
  assert jaxpr != str(jax.make_jaxpr(model.apply)({"params": params}, x))

  def loss(m):
    return lambda p: jnp.sum(m.apply({"params": p}, x) ** 2)
  g_dot, g_bc = jax.jit(jax.grad(loss(model)))(params), jax.jit(jax.grad(loss(bcast)))(params)
  for a, b in zip(jax.tree.leaves(g_dot), jax.tree.leaves(g_bc)):
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5 * float(np.abs(a).max()))
  for name in forms:
    with pytest.raises(ValueError, match=name):
      model.clone(**{name: "einsum"}).init(jax.random.PRNGKey(1), x)


def test_cpu_programs_pick_the_attention_forms():
  """On a CPU every program runs the spatial attention as broadcast products, and the
  mixed blocks' attention too when they see at most `MIXED_BROADCAST_MAX_TOKENS` tokens
  (27_1_3: 4, 27_3_3: 6), the dots with more (81_9_9: 18, 243_27_27: 54); elsewhere the
  model is left as it is."""
  cpu = jax.default_backend() == "cpu"
  for kept, coeffs in [(1, 3), (3, 3), (9, 9), (27, 27)]:
    tuned = cpu_tuning.tuned_model(_tiny(frames=81, kept=kept, coeffs=coeffs))
    few = kept + coeffs <= cpu_tuning.MIXED_BROADCAST_MAX_TOKENS
    assert tuned.spatial_attention == ("broadcast" if cpu else "dot")
    assert tuned.mixed_attention == ("broadcast" if cpu and few else "dot")
  assert cpu_tuning.MIXED_BROADCAST_MAX_TOKENS in range(6, 18)  # 4/6 tokens in, 18 out


def test_broadcast_attention_module():
  """`Attention(form='broadcast')` alone: the dot form's values with real heads, its q/k/v
  gradient one concatenate; an unknown form is a clear error."""
  # Real head split: different heads must see different weights (heads are not mixed).
  attn = model_lib.Attention(num_heads=2, form="broadcast")
  tokens = jax.random.normal(jax.random.PRNGKey(2), (3, 5, 8))
  p = attn.init(jax.random.PRNGKey(3), tokens)["params"]
  np.testing.assert_allclose(attn.apply({"params": p}, tokens),
                             model_lib.Attention(num_heads=2).apply({"params": p}, tokens),
                             rtol=1e-5, atol=1e-6)
  # The broadcast form's q/k/v gradient is assembled by one concatenate, not by pads
  # of three slices (as the dot form's is): faster on XLA:CPU.
  def grad_ops(a):
    return str(jax.make_jaxpr(jax.grad(lambda q: jnp.sum(a.apply({"params": q}, tokens) ** 2)))(p))
  assert " pad[" not in grad_ops(attn) and "concatenate" in grad_ops(attn)
  assert " pad[" in grad_ops(model_lib.Attention(num_heads=2))
  with pytest.raises(ValueError, match="form"):
    model_lib.Attention(num_heads=2, form="einsum").init(jax.random.PRNGKey(3), tokens)


