"""The one place where ``jaxtag.serving.tag`` turns a decoded waveform into model inputs: the run's preprocessing
contract (``jaxtag.models.contract``), the same one ``predict`` and ``evaluate`` use.

So a trained run is tagged in non-overlapping chunks of its chunk length, and an imported musicnn run in
musicnn's own 187-frame patches of one whole-file log-mel (with its float16 rounding): tag, predict and
musicnn give the same scores. Numpy-only: it runs in the decode worker processes (the contract is a
picklable dataclass).
"""
from __future__ import annotations

import numpy as np

from jaxtag.models import contract as contract_lib

Contract = contract_lib.Contract


def contract_of(config, workdir: str | None = None) -> Contract:
  """The run's contract: its ``contract.json`` when ``workdir`` is given (checked against the config)."""
  return contract_lib.for_run(workdir, config) if workdir else contract_lib.from_config(config)


def model_inputs(wave: np.ndarray, contract: Contract) -> np.ndarray:
  """``(inputs, *contract.input_shape)`` float32 model inputs of one file (``wave`` at the contract's rate)."""
  return contract.model_inputs(wave, contract.sample_rate)
