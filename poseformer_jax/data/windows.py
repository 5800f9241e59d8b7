"""The one windowing routine: F-frame windows centred on a frame, edge-padded.

Training, evaluation and video lifting all cut their inputs here. Sequences
are concatenated into one array and windows are gathered by index arithmetic
(no per-sample Python loop, no materialised window array):

    window(seq s, frame t) = concat[start_s + clip(t + (-pad..pad), 0, len_s - 1)]

which repeats the first/last frame at sequence borders (edge padding, as
upstream's ``np.pad(..., 'edge')``). With a ``latency`` N < pad the window
sees only N frames after its centre, as a live stream that answers N frames
late has (`poseformer_jax.stream`): the rows after centre + N repeat frame
centre + N, as rows after a sequence's end repeat its last frame.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from poseformer_jax.errors import ConfigError


def window_index(seq_start: np.ndarray, seq_len: np.ndarray, frame: np.ndarray,
                 pad: int, latency: int | None = None) -> np.ndarray:
  """Row indices of the windows into the concatenated frame array.

  Args:
    seq_start: (B,) int, row of each sample's sequence start in the concatenation.
    seq_len: (B,) int, length of each sample's sequence (frames, >= 1).
    frame: (B,) int, centre frame of each sample within its sequence.
    pad: half window; the window has F = 2*pad + 1 frames.
    latency: frames after the centre the window may see, 0..pad; None: pad
      (the centred window). See the module doc.
  Returns:
    (B, F) int64 row indices (edge-padded at sequence borders).
  """
  frame = np.asarray(frame, np.int64)[:, None]
  last = np.asarray(seq_len, np.int64)[:, None] - 1
  if latency is not None:
    last = np.minimum(last, frame + check_latency(latency, pad))
  local = np.clip(frame + np.arange(-pad, pad + 1, dtype=np.int64), 0, last)
  return np.asarray(seq_start, np.int64)[:, None] + local


def check_latency(latency, pad: int) -> int:
  """`latency` as an int in 0..pad (frames of future context); ConfigError otherwise."""
  if isinstance(latency, bool) or not isinstance(latency, (int, np.integer)) or not (
      0 <= latency <= pad):
    raise ConfigError(f"latency must be an integer from 0 to {pad} (frames after the centre "
                     f"of an F={2 * pad + 1} window), got {latency!r}")
  return int(latency)


class SequenceBank:
  """Variable-length sequences concatenated along time, addressable by sample id.

  Sample ids enumerate every frame of every sequence in order: sample i is
  frame `sample_frame[i]` of sequence `sample_seq[i]`.

  Args:
    sequences: list of arrays (T_i, ...) with the same trailing shape, T_i >= 1.
  """

  def __init__(self, sequences: Sequence[np.ndarray]):
    if not sequences:
      raise ValueError("SequenceBank needs at least one sequence")
    lengths = np.array([len(s) for s in sequences], np.int64)
    if (lengths < 1).any():
      raise ValueError("every sequence needs at least one frame")
    self.data = np.concatenate([np.asarray(s) for s in sequences], axis=0)
    self.lengths = lengths
    self.starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    self.sample_seq = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    self.sample_frame = np.arange(len(self.data), dtype=np.int64) - self.starts[self.sample_seq]

  @property
  def num_samples(self) -> int:
    return len(self.data)

  def index(self, sample_ids: np.ndarray, pad: int, latency: int | None = None) -> np.ndarray:
    """(B,) sample ids -> (B, 2*pad+1) row indices into `self.data` (`window_index`)."""
    seq = self.sample_seq[sample_ids]
    return window_index(self.starts[seq], self.lengths[seq], self.sample_frame[sample_ids], pad,
                        latency)

  def windows(self, sample_ids: np.ndarray, pad: int, latency: int | None = None) -> np.ndarray:
    """(B,) sample ids -> (B, 2*pad+1, ...) edge-padded windows."""
    return self.data[self.index(np.asarray(sample_ids), pad, latency)]

