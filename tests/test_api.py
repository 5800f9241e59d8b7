"""The documented entry points run the fast forms: `poseformer_jax.jit_apply` equals
``model.apply`` and compiles as the project's own forwards do; `load_checkpoint` returns the
model in the form this backend runs fastest, with the same values."""

import jax
import numpy as np
import pytest

import poseformer_jax
from poseformer_jax import checkpoint, config_lib, cpu_tuning
from poseformer_jax import model as model_lib
from poseformer_jax.errors import ConfigError

cpu_only = pytest.mark.skipif(jax.default_backend() != "cpu", reason="the CPU forms")


def _tiny_config():
  config = config_lib.base_config()
  m = config.model
  m.num_frames, m.kept_frames, m.kept_coeffs = 9, 3, 3
  m.embed_dim_ratio, m.depth, m.num_heads = 8, 1, 2
  return config


def _model_and_params(config):
  model = model_lib.from_config(config.model)  # as configured: 'dot' attention everywhere
  x = np.zeros((1, 9, 17, 2), np.float32)
  params = model.init(jax.random.PRNGKey(1), x)["params"]
  return model, params


def _windows(b, seed=0):
  return np.random.default_rng(seed).uniform(-1, 1, (b, 9, 17, 2)).astype(np.float32)


@pytest.mark.parametrize("b, chunk_rows", [(1, None), (7, 0), (7, 3), (6, 3), (5, 8)])
def test_jit_apply_equals_model_apply(b, chunk_rows):
  """Same (B, 1, J, 3) values as ``model.apply`` of the configured model, to float32
  rounding, for batches in whole chunks, with rows left over, and below one chunk."""
  model, params = _model_and_params(_tiny_config())
  x = _windows(b)
  want = np.asarray(model.apply({"params": params}, x))
  got = np.asarray(poseformer_jax.jit_apply(model, chunk_rows)({"params": params}, x))
  assert got.shape == want.shape == (b, 1, 17, 3)
  assert np.abs(want).max() > 1e-2
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@cpu_only
def test_jit_apply_compiles_as_the_projects_forwards():
  """On a CPU the documented call is the driver's forward: the tuned attention forms,
  the forward compiler options (no YNNPACK fusions, which plain ``jax.jit(model.apply)``
  gets, so the check can fail) and chunks through `lax.map` when B exceeds a chunk."""
  model, params = _model_and_params(_tiny_config())
  x = _windows(7)
  apply = poseformer_jax.jit_apply(model, chunk_rows=3)
  lowered = apply.lower({"params": params}, x)
  assert "while" in lowered.as_text()  # two whole chunks in lax.map, one row after them
  assert "__ynn_fusion" not in lowered.compile().as_text()
  assert "__ynn_fusion" in jax.jit(model.apply).lower({"params": params}, x).compile().as_text()
  assert "while" not in poseformer_jax.jit_apply(model, 8).lower({"params": params}, x).as_text()
  with pytest.raises(ConfigError, match="chunk_rows must be >= 0"):
    poseformer_jax.jit_apply(model, chunk_rows=-1)


@cpu_only
def test_load_checkpoint_returns_the_cpu_form_with_the_same_values(tmp_path):
  """A checkpoint stored with the configured ('dot') forms loads as `cpu_tuning.tuned_model`
  makes it (broadcast attention for the spatial branch and, with 6 tokens, the mixed
  blocks), so plain ``jax.jit(model.apply)`` runs it; the outputs are the stored model's."""
  config = _tiny_config()
  model, params = _model_and_params(config)
  checkpoint.save_params(tmp_path / "ckpt", params, config)
  loaded, loaded_params, _ = poseformer_jax.load_checkpoint(tmp_path / "ckpt")
  assert (model.spatial_attention, model.mixed_attention) == ("dot", "dot")
  assert (loaded.spatial_attention, loaded.mixed_attention) == ("broadcast", "broadcast")
  assert loaded == cpu_tuning.tuned_model(model)
  x = _windows(5)
  np.testing.assert_allclose(jax.jit(loaded.apply)({"params": loaded_params}, x),
                             model.apply({"params": params}, x), rtol=1e-5, atol=1e-6)
