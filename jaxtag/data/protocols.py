"""Evaluation protocols (``eval.protocol``, ``evaluate --protocol``): which inputs of a song its scores average.

* ``chunks`` (jaxtag's, every peer's): all non-overlapping chunks of the song, the tail dropped.
* ``crops16`` (Won et al. 2020, ``solver.get_tensor``): 16 crops of one chunk each, crop ``i`` starting at
  ``i * hop`` with ``hop = (length - chunk) // 16``. So the crops are evenly spaced but the last one starts at
  ``15 hop``, not at ``length - chunk``: up to ``hop + (length - chunk) % 16`` samples at the end are never
  seen, exactly as in their code. Crops overlap when the song is shorter than 17 chunks. A song shorter than one
  chunk is zero-padded to one chunk first (jaxtag's rule), and then all 16 crops are that chunk.

Either way a song's scores are the mean of its inputs' sigmoids (their ``out.mean(axis=0)`` over the crops).
Both are expressed as *input makers* with the preprocessing contract's interface (``input_shape``,
``model_inputs(wave, sample_rate)``), which is what the eval pipeline calls per song; ``Perturbed`` wraps one
to alter the decoded audio first (the robustness study).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from jaxtag.core import choices

N_CROPS = 16


def crop_starts(length: int, chunk: int, n: int = N_CROPS) -> list[int]:
  """Start samples of Won et al.'s ``n`` crops of a ``length``-sample song (``length >= chunk``)."""
  hop = (length - chunk) // n
  return [i * hop for i in range(n)]


@dataclasses.dataclass(frozen=True)
class Crops:
  """The ``crops16`` protocol on top of a ``chunks`` contract (same resampling and padding rules)."""
  contract: object
  n: int = N_CROPS

  def __post_init__(self):
    if self.contract.kind != "chunks":
      raise choices.ConfigError(f"the crops16 protocol takes waveform chunks; this run's model takes "
                                f"{self.contract.kind!r} inputs")

  @property
  def kind(self) -> str:
    return self.contract.kind

  @property
  def input_shape(self) -> tuple[int, ...]:
    return self.contract.input_shape

  def model_inputs(self, wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono audio -> ``(n, chunk)`` crops, resampled (soxr HQ) and padded as the contract does."""
    wave, n = np.asarray(wave, np.float32), self.contract.chunk_samples
    if int(sample_rate) != self.contract.sample_rate:
      import soxr
      wave = soxr.resample(wave, int(sample_rate), self.contract.sample_rate, quality="HQ").astype(np.float32)
    wave = np.pad(wave, (0, max(0, n - len(wave))))
    return np.stack([wave[s:s + n] for s in crop_starts(len(wave), n, self.n)])


@dataclasses.dataclass(frozen=True)
class Perturbed:
  """An input maker whose song audio first goes through ``perturb(wave, sample_rate) -> wave``."""
  inputs: object
  perturb: object

  @property
  def kind(self) -> str:
    return self.inputs.kind

  @property
  def input_shape(self) -> tuple[int, ...]:
    return self.inputs.input_shape

  def model_inputs(self, wave: np.ndarray, sample_rate: int) -> np.ndarray:
    return self.inputs.model_inputs(self.perturb(np.asarray(wave, np.float32), int(sample_rate)), sample_rate)


def inputs_for(contract, protocol: str):
  """The input maker of ``protocol`` (``choices.EVAL_PROTOCOLS``) for a run's ``contract``."""
  choices.check("eval.protocol", protocol, choices.EVAL_PROTOCOLS)
  return contract if protocol == "chunks" else Crops(contract)
