"""Export a checkpoint for deployment: ONNX (onnxruntime, TensorRT, ...) or StableHLO.

    python -m poseformer_jax.export --checkpoint pretrained:h36m-81_1_3-5subj --format onnx \\
        --output poseformer.onnx
    poseformer-jax export --checkpoint ckpt/ --format stablehlo --output poseformer.stablehlo

The exported function is the one `poseformer_jax.lifter.Lifter` runs per window
(`poseformer_jax.inference.Predictor.forward_fn`, weights baked in):

    input  ``windows``  float32 (B, F, 17, 2): F-frame windows of H36M-17 keypoints in
           normalised screen coordinates (``x / w * 2 - [1, h / w]``), centred on the
           frame to lift (edge-pad at clip ends, as `poseformer_jax.stream` does)
    output ``poses``    float32 (B, 17, 3): centre-frame 3D poses, camera space, metres,
           root (pelvis) = 0, averaged with the flipped input (``--no-flip``: not)

B is dynamic unless ``--batch N`` fixes it. After writing, the file is loaded back and
run on random windows; the largest difference to the JAX forward is printed (ONNX needs
onnxruntime for that check).

* ONNX: converted with ``jax2onnx`` (extra ``export``: ``pip install -e '.[export]'``);
  opset 23; model metadata holds the variant, F and the flip setting.
* StableHLO: `jax.export` (no extra needed). ``.mlir`` writes the module as text;
  any other suffix writes the serialized `jax.export.Exported` (versioned, portable;
  ``jax.export.deserialize(bytes).call(x)`` runs it).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
from absl import flags

from poseformer_jax import cli
from poseformer_jax.errors import PoseFormerError
from poseformer_jax.lifter import Lifter
from poseformer_jax.pretrained import DEFAULT_CHECKPOINT

FORMATS = ("onnx", "stablehlo")


def inference_function(lifter):
  """(windows (B, F, 17, 2)) -> (B, 17, 3) with the weights of `lifter` baked in."""
  predictor = lifter.predictor(1)
  params = lifter.params
  return lambda windows: predictor.forward_fn(params, windows)


def _input_spec(lifter, batch: int | None):
  import jax
  import jax.numpy as jnp
  b = batch if batch else jax.export.symbolic_shape("B")[0]
  return jax.ShapeDtypeStruct((b, lifter.num_frames, 17, 2), jnp.float32)


def export_stablehlo(lifter, path, *, batch: int | None = None):
  """Writes the StableHLO of the inference function; returns the `jax.export.Exported`."""
  import jax
  exported = jax.export.export(jax.jit(inference_function(lifter)))(_input_spec(lifter, batch))
  path = Path(path)
  if path.suffix.lower() == ".mlir":
    path.write_text(exported.mlir_module())
  else:
    path.write_bytes(exported.serialize())
  return exported


def export_onnx(lifter, path, *, batch: int | None = None):
  """Writes the ONNX model of the inference function (jax2onnx); returns the ModelProto."""
  try:
    import onnx
    from jax2onnx import to_onnx
  except ImportError as e:
    raise PoseFormerError(f"ONNX export needs jax2onnx ({e.name} is missing): "
                          "pip install -e '.[export]'") from None
  for name in ("jax2onnx", "onnx_ir"):  # plugin and serialisation chatter
    logging.getLogger(name).setLevel(logging.ERROR)
  shape = (batch or "B", lifter.num_frames, 17, 2)
  model = to_onnx(inference_function(lifter), [shape], model_name="poseformerv2",
                  return_mode="proto", input_names=["windows"], output_names=["poses"])
  meta = {"variant": lifter.variant, "num_frames": str(lifter.num_frames),
          "flip": str(lifter.flip), "input": "windows (B, F, 17, 2) normalised screen coords",
          "output": "poses (B, 17, 3) metres, camera space, root-relative"}
  onnx.helper.set_model_props(model, meta)
  onnx.save(model, str(path))
  return model


def check_export(lifter, path, fmt: str, *, batch: int | None = None, seed: int = 0):
  """Largest |exported - JAX| over random windows (None if onnxruntime is missing)."""
  rng = np.random.default_rng(seed)
  x = rng.normal(0, 0.3, (batch or 3, lifter.num_frames, 17, 2)).astype(np.float32)
  want = lifter.predictor(len(x)).predict_windows(x)
  if fmt == "onnx":
    try:
      import onnxruntime as ort
    except ImportError:
      return None
    runner = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = runner.run(None, {runner.get_inputs()[0].name: x})[0]
  else:
    import jax
    if Path(path).suffix.lower() == ".mlir":
      return None
    got = np.asarray(jax.export.deserialize(Path(path).read_bytes()).call(x))
  return float(np.abs(np.asarray(got) - want).max())


# --- command line -------------------------------------------------------------------------------

def _flags() -> flags.FlagValues:
  fv = flags.FlagValues()
  flags.DEFINE_string("checkpoint", DEFAULT_CHECKPOINT, "checkpoint directory or "
                      "pretrained:NAME", flag_values=fv)
  flags.DEFINE_enum("format", None, FORMATS, "onnx or stablehlo (default: from --output's "
                    "suffix, .onnx -> onnx)", flag_values=fv)
  flags.DEFINE_string("output", None, "file to write", flag_values=fv)
  flags.DEFINE_integer("batch", None, "fixed batch size (default: dynamic)", lower_bound=1,
                       flag_values=fv)
  flags.DEFINE_boolean("no-flip", False, "export without test-time flip averaging",
                       flag_values=fv)
  flags.DEFINE_boolean("overwrite", False, "replace an existing output", flag_values=fv)
  flags.DEFINE_boolean("verbose", False, "full tracebacks on errors", flag_values=fv)
  return fv


def run(checkpoint, fmt: str | None, output, *, batch=None, flip=True, overwrite=False) -> int:
  output = Path(output)
  fmt = fmt or ("onnx" if output.suffix.lower() == ".onnx" else "stablehlo")
  out = cli.Outputs(overwrite)
  out.add("output", output, (".onnx",) if fmt == "onnx" else (output.suffix or ".stablehlo",))
  lifter = Lifter(checkpoint, batch_size=batch or 1, flip=flip)
  tmp = out.tmp("output")
  try:
    (export_onnx if fmt == "onnx" else export_stablehlo)(lifter, tmp, batch=batch)
    diff = check_export(lifter, tmp, fmt, batch=batch)
    out.commit()
  except BaseException:
    out.discard()
    raise
  why = "onnxruntime not installed" if fmt == "onnx" else "text module"
  check = (f"not checked ({why})" if diff is None
           else f"max |{fmt} - JAX| = {diff:.2e} m on random windows")
  print(f"exported model {lifter.variant} (F={lifter.num_frames}, flip={flip}, batch "
        f"{batch or 'dynamic'}) as {fmt}: {check}")
  print(f"wrote {output}")
  return 0


def main(argv=None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  fv = _flags()
  status = cli.parse_command_flags(fv, argv, __doc__, required=("output",))
  if status is not None:
    return status
  try:
    return run(fv["checkpoint"].value, fv["format"].value, fv["output"].value,
               batch=fv["batch"].value, flip=not fv["no-flip"].value,
               overwrite=fv["overwrite"].value)
  except (PoseFormerError, OSError) as e:
    if fv["verbose"].value:
      raise
    return cli.fail(str(e).splitlines()[0] if str(e) else type(e).__name__)


if __name__ == "__main__":
  sys.exit(main())
