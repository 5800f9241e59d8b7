"""PoseFormerV2 on Human3.6M: the six published models, the upstream recipe and a fast one.

Select a model by name: ``--config=configs/h36m.py:243_27_27`` (frames_keptframes_keptcoeffs).
Options follow the variant after commas: ``--config=configs/h36m.py:81_1_3,recipe=fast``.

Recipes:
  upstream (default)  the paper's: AdamW lr 1e-4, x0.99 per epoch, batch 1024, 200 epochs over
                      every frame. For reproducing the paper on a GPU.
  fast                for small budgets (a CPU, a few GPU-minutes): batch 256, linear warm-up
                      then cosine to 1 % over a fixed number of steps (epochs x
                      max_steps_per_epoch), peak lr 7e-4, gradient clipping at 1.0, and 2D input
                      noise (per-sample std up to 0.01 = 5 px at 1000 px) so the model also
                      serves detector keypoints. Epochs are capped at 600 steps, each a fresh
                      shuffled slice of the whole training set, so validation comes every 600 steps.

Any field can be overridden on the command line, e.g. ``--config.train.batch_size=256``.
"""

from poseformer_jax import config_lib
from poseformer_jax.errors import ConfigError

RECIPES = ("upstream", "fast")


def _parse(arg: str) -> tuple[str, dict]:
  variant, *options = [part.strip() for part in arg.split(",") if part.strip()] or ["27_3_3"]
  opts = {}
  for option in options:
    key, sep, value = option.partition("=")
    if not sep or key != "recipe":
      raise ConfigError(f"configs/h36m.py: unknown option {option!r} (expected recipe=NAME)")
    opts[key] = value
  return variant, opts


def apply_fast_recipe(config) -> None:
  """The budget recipe (see the module docstring); changes only `train` and `data` fields."""
  t = config.train
  t.batch_size = 256
  t.learning_rate = 7e-4
  t.schedule = "warmup_cosine"
  t.warmup_steps = 300
  t.end_lr_ratio = 0.01
  t.grad_clip_norm = 1.0
  t.epochs = 10
  t.max_steps_per_epoch = 600
  t.keep_checkpoints = 2
  t.checkpoint_every_steps = 100
  config.data.noise_std = 0.01
  config.eval.max_frames = 500        # validation: the first 500 frames of each test sequence


def get_config(arg: str = "27_3_3"):
  variant, opts = _parse(arg)
  config = config_lib.base_config()
  config_lib.set_variant(config, variant)
  recipe = opts.get("recipe", "upstream")
  if recipe not in RECIPES:
    raise ConfigError(f"configs/h36m.py: unknown recipe {recipe!r}; choose one of "
                      f"{', '.join(RECIPES)}")
  if recipe == "fast":
    apply_fast_recipe(config)
  config.recipe = recipe
  return config
