"""Decode-worker task: one file -> its model inputs, or the reason it failed (never an exception).

Runs in a spawned process pool (numpy, soundfile, soxr only; no jax), so decoding overlaps the device and
uses every core. The result is a plain dict so that it pickles cheaply.
"""
from __future__ import annotations

from jaxtag.data import decode
from jaxtag.tagging import prep


def decode_file(path: str, contract: prep.Contract, max_seconds: float | None) -> dict:
  """``{"path", "duration", "seconds", "chunks"}`` (``duration``: the file's length, ``seconds``: what was
  tagged) or ``{"path", "reason", "detail"}`` with the decoder's reason (``decode.BAD_REASONS``) or
  ``error`` for anything unexpected."""
  try:
    wave, duration = decode.load_audio_stream(path, contract.sample_rate, max_seconds)
    chunks = prep.model_inputs(wave, contract)
  except decode.DecodeError as e:
    return {"path": path, "reason": e.reason, "detail": e.detail}
  except Exception as e:   # noqa: BLE001  one file must never stop the run
    return {"path": path, "reason": "error", "detail": f"{type(e).__name__}: {e}"}
  return {"path": path, "duration": float(duration), "seconds": len(wave) / contract.sample_rate,
          "chunks": chunks}
