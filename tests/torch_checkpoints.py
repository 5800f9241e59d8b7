"""Writes random-weight checkpoints in the official PoseFormerV2 file formats (for tests)."""

from __future__ import annotations

import numpy as np
import torch

from torch_reference import PoseTransformerV2

# name -> (F, f, n); '3dhp_81_9_9' is saved as a plain state dict like no_refine_39_2758.pth.
VARIANTS = {
    "27_1_3": (27, 1, 3), "27_3_3": (27, 3, 3), "81_1_3": (81, 1, 3), "81_3_3": (81, 3, 3),
    "81_9_9": (81, 9, 9), "243_27_27": (243, 27, 27), "3dhp_81_9_9": (81, 9, 9),
}


def random_reference(frames, kept_frames, kept_coeffs, seed=0, **kwargs) -> PoseTransformerV2:
  """A reference model whose every parameter (pos embeds and norms too) is random."""
  torch.manual_seed(seed)
  model = PoseTransformerV2(frames, kept_frames, kept_coeffs, **kwargs)
  with torch.no_grad():
    for name, p in model.named_parameters():
      if "norm" in name or name.startswith("head.0"):
        p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.1 * torch.randn_like(p))
      elif "pos_embed" in name or name.endswith("bias"):
        p.copy_(0.02 * torch.randn_like(p))
  return model.eval()


def save_official(model: PoseTransformerV2, path, plain: bool = False) -> None:
  """torch.save in the official layout: DataParallel keys (`module.`), and for H36M the
  training dict with epoch, lr, a numpy RandomState and an AdamW state."""
  state = {f"module.{k}": v for k, v in model.state_dict().items()}
  if plain:
    torch.save(state, path)
    return
  opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1)
  x = torch.randn(2, model.num_frame, 17, 2)
  model.train()
  model(x).sum().backward()
  opt.step()
  opt.zero_grad()
  model.eval()
  state = {f"module.{k}": v for k, v in model.state_dict().items()}
  torch.save({"epoch": 7, "lr": 9.3e-5, "random_state": np.random.RandomState(1234),
              "optimizer": opt.state_dict(), "model_pos": state}, path)
