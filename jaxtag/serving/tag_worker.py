"""Decode-worker task: one file -> its model inputs, or the reason it failed (never an exception).

Runs in a spawned process pool (numpy, soundfile, soxr only; no jax), so decoding overlaps the device and
uses every core. The result is a plain dict so that it pickles cheaply.
"""
from __future__ import annotations

import os
import uuid

import numpy as np

from jaxtag.data import decode
from jaxtag.models.contract import Contract

# Inputs larger than this go back through a scratch .npy file, not the result pipe: pickling a long file's
# chunks would hold a second copy in the worker (and a third while the parent unpickles them).
SPILL_BYTES = 32 << 20


def decode_file(path: str, contract: Contract, max_seconds: float | None, scratch: str | None = None) -> dict:
  """``{"path", "duration", "seconds", "chunks"}`` (``duration``: the file's length, ``seconds``: what was
  tagged; ``chunks_file`` instead of ``chunks`` for a big input written under ``scratch``) or ``{"path",
  "reason", "detail"}`` with the decoder's reason (``decode.BAD_REASONS``) or ``error`` for anything
  unexpected."""
  try:
    wave, duration = decode.load_audio_stream(path, contract.sample_rate, max_seconds)
    chunks = contract.model_inputs(wave, contract.sample_rate)   # the run's preprocessing contract
  except decode.DecodeError as e:
    return {"path": path, "reason": e.reason, "detail": e.detail}
  except Exception as e:   # noqa: BLE001  one file must never stop the run
    return {"path": path, "reason": "error", "detail": f"{type(e).__name__}: {e}"}
  out = {"path": path, "duration": float(duration), "seconds": len(wave) / contract.sample_rate}
  if scratch and chunks.nbytes > SPILL_BYTES:
    spill = os.path.join(scratch, f"{uuid.uuid4().hex}.npy")
    np.save(spill, chunks)
    return {**out, "chunks_file": spill}
  return {**out, "chunks": chunks}


def load_chunks(result: dict) -> np.ndarray:
  """The chunks of a ``decode_file`` result; a spilled file is memory-mapped and unlinked at once (the mapping
  keeps it readable, the disk space is freed when the array goes)."""
  if "chunks_file" not in result:
    return result["chunks"]
  chunks = np.load(result["chunks_file"], mmap_mode="r")
  os.remove(result["chunks_file"])
  return chunks
