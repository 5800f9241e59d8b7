"""XLA:CPU tuning: the options every forward and the train step compile with, and their
fallback on a jaxlib that does not know them (`poseformer_jax.cpu_tuning`)."""

import functools
import re

import flax.linen
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from poseformer_jax import config_lib, cpu_tuning, inference, parallel, train_step
from poseformer_jax import model as model_lib
from poseformer_jax.errors import ConfigError

pytestmark = pytest.mark.skipif(jax.default_backend() != "cpu", reason="XLA:CPU compiler options")


def _tiny(drop_path_rate=0.0):
  return model_lib.PoseFormerV2(num_frames=9, kept_frames=3, kept_coeffs=3, embed_dim_ratio=8,
                                depth=1, num_heads=2, drop_path_rate=drop_path_rate)


def _ynn_fusions(hlo: str) -> dict[str, str]:
  """YNNPACK fusion name -> the body of the computation it calls, from compiled HLO text."""
  bodies = dict(re.findall(r"^%?([\w.\-]+) \([^\n]*\{\n(.*?)\n\}", hlo, re.M | re.S))
  return {name: bodies[comp] for name, comp in re.findall(
      r"%([\w.\-]+) = [^\n]*calls=%([\w.\-]+)[^\n]*__ynn_fusion", hlo)}


def test_cpu_forwards_compile_to_xlas_own_dots():
  """Forward programs on a CPU are compiled without YNNPACK fusions (their GEMMs run
  on XLA's own kernels, faster here; benchmarks/README), with the same outputs; the
  default compilation of the same program does use YNNPACK, so the check can fail."""
  model = cpu_tuning.tuned_model(_tiny())
  x = jax.random.normal(jax.random.PRNGKey(0), (4, 9, 17, 2))
  params = model.init(jax.random.PRNGKey(1), x)["params"]
  fwd = inference.chunked_apply(model, 2)
  lowered = jax.jit(fwd).lower(params, x)
  tuned = lowered.compile(compiler_options=cpu_tuning.compiler_options("forward"))
  assert "__ynn_fusion" in lowered.compile().as_text()
  assert "__ynn_fusion" not in tuned.as_text()
  np.testing.assert_allclose(tuned(params, x), model.apply({"params": params}, x),
                             rtol=1e-5, atol=1e-6)


def test_cpu_train_step_keeps_ynnpack_for_dots_only_with_the_same_gradients():
  """The train step on a CPU runs the broadcast spatial attention and YNNPACK for dots
  only (its reduction fusions materialise the broadcast products: 8-14 % slower steps).
  Every YNNPACK fusion of the tuned gradient holds a dot, while the default compilation
  of the broadcast attention's gradient has fusions without one (so the check can fail);
  the gradients equal those of the dot form on XLA's defaults."""
  model = _tiny(drop_path_rate=0.1)
  mesh = parallel.make_mesh()
  tx = train_step.make_optimizer(config_lib.base_config().train, steps_per_epoch=10)
  init_key, dropout_key = train_step.rng_keys(0)
  spec = train_step.step_spec(model, tx, mesh, dropout_key)
  assert spec.model.spatial_attention == "broadcast"
  options = train_step.jit_kwargs(mesh)["compiler_options"]
  assert options == cpu_tuning.OPTIONS["train"]

  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.uniform(-1, 1, (8, 9, 17, 2)).astype(np.float32))
  y = jnp.asarray((rng.normal(size=(8, 1, 17, 3)) * 0.2).astype(np.float32))
  params = model.init(init_key, x)["params"]

  def grads(m, options):
    loss = functools.partial(train_step._loss, model=m, noise_std=0.0)
    return jax.jit(jax.value_and_grad(loss), compiler_options=options).lower(
        params, x, y, jax.random.PRNGKey(3)).compile()
  tuned = grads(spec.model, options)
  fusions = _ynn_fusions(tuned.as_text())
  assert fusions and all(" dot(" in body for body in fusions.values())
  attn = model_lib.Attention(num_heads=2, form="broadcast")
  tokens = jnp.ones((4, 17, 8))
  p = attn.init(jax.random.PRNGKey(0), tokens)["params"]
  attn_grad = jax.jit(jax.grad(lambda p: jnp.sum(attn.apply({"params": p}, tokens) ** 2)))
  assert any(" dot(" not in body
             for body in _ynn_fusions(attn_grad.lower(p).compile().as_text()).values())

  (want_loss, want) = grads(model, {})(params, x, y, jax.random.PRNGKey(3))
  (got_loss, got) = tuned(params, x, y, jax.random.PRNGKey(3))
  np.testing.assert_allclose(float(got_loss), float(want_loss), rtol=1e-5)
  assert max(float(np.abs(a).max()) for a in jax.tree.leaves(want)) > 1e-3
  for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
    assert a.shape == b.shape
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5 * float(np.abs(a).max()))


def test_options_this_xla_does_not_know_fall_back_to_the_defaults(monkeypatch):
  """A jaxlib whose XLA lacks an experimental option (or its value) still runs forwards
  and training (on XLA's defaults) instead of failing every compile; an unknown program
  kind is a clear error."""
  assert cpu_tuning.compiler_options("forward") == cpu_tuning.OPTIONS["forward"]
  assert cpu_tuning.compiler_options("train") == cpu_tuning.OPTIONS["train"]
  monkeypatch.setitem(cpu_tuning.OPTIONS, "forward", {"xla_cpu_no_such_option": ""})
  assert cpu_tuning.compiler_options("forward") == {}
  monkeypatch.setitem(cpu_tuning.OPTIONS, "train",
                      {"xla_cpu_experimental_ynn_fusion_type": "NOT_A_FUSION_TYPE"})
  assert cpu_tuning.compiler_options("train") == {}
  with pytest.raises(ValueError, match="program"):
    cpu_tuning.compiler_options("eval")


def _entry_shapes(hlo: str) -> list[str]:
  """Shapes of the 2-D arrays the compiled program's entry computation creates."""
  return re.findall(r"= (f32\[\d+,\d+\])\{1,0\} (?:fusion|copy|transpose)\(", hlo.split("ENTRY")[1])


def test_dense_kernel_gradient_reads_the_activations_as_they_lie():
  """`model.Dense` flattens the leading axes, so its kernel gradient is one GEMM over the
  rows of the (B*N, K) activations and (B*N, F) gradients: the compiled gradient makes no
  transposed (F, B*N) copy. flax's `nn.Dense` contracts two axes there and XLA:CPU makes
  that copy (so the check can fail). Same values and gradients."""
  x = jax.random.normal(jax.random.PRNGKey(0), (16, 18, 64))
  ours, theirs = model_lib.Dense(96), flax.linen.Dense(96)
  params = ours.init(jax.random.PRNGKey(1), x)["params"]

  def grad(m):
    loss = lambda p, x: jnp.sum(jnp.sin(m.apply({"params": p}, x)))
    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)),
                   compiler_options=cpu_tuning.compiler_options("train"))

  compiled = {m: grad(m).lower(params, x).compile() for m in (ours, theirs)}
  assert "f32[96,288]" in _entry_shapes(compiled[theirs].as_text())
  assert "f32[96,288]" not in _entry_shapes(compiled[ours].as_text())
  (v_ours, g_ours), (v_theirs, g_theirs) = (compiled[m](params, x) for m in (ours, theirs))
  np.testing.assert_allclose(v_ours, v_theirs, rtol=1e-6)
  for a, b in zip(jax.tree.leaves(g_ours), jax.tree.leaves(g_theirs)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_cpu_train_steps_split_only_large_batches_into_microbatches(monkeypatch):
  """Automatic microbatches: the long variants at large batches on a CPU; never elsewhere."""
  def parts(name, batch, devices=1):
    cfg = config_lib.base_config()
    config_lib.set_variant(cfg, name)
    return cpu_tuning.train_microbatches(cfg.model, batch, devices)

  assert [parts("243_27_27", b) for b in (32, 64, 128, 256, 1024)] == [1, 1, 2, 4, 16]
  assert [parts("81_9_9", b) for b in (64, 256)] == [1, 2]
  assert [parts(v, 256) for v in ("27_1_3", "27_3_3", "81_1_3", "81_3_3")] == [1, 1, 1, 1]
  # Each device's rows split evenly: 4 devices x 64 rows may take 4 parts, 2 x 125 none.
  assert parts("243_27_27", 256, devices=4) == 4
  assert parts("243_27_27", 250, devices=2) == 1
  assert parts("243_27_27", 24, devices=1) == 1
  # An explicit setting wins; off a CPU the automatic count is 1.
  cfg = config_lib.base_config()
  config_lib.set_variant(cfg, "243_27_27")
  mesh = parallel.make_mesh()
  assert train_step.microbatches(0, cfg.model, 256, mesh) == 4
  assert train_step.microbatches(3, cfg.model, 256, mesh) == 3
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  assert train_step.microbatches(0, cfg.model, 1024, mesh) == 1
  cfg.train.grad_accum_steps = -1
  with pytest.raises(ConfigError, match=r"grad_accum_steps must be >= 1 .* or 0 \(automatic\)"):
    train_step.validate_config(cfg)
