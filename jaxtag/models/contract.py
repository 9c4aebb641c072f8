"""A run's preprocessing contract: what audio its model was trained on, and the one function that turns a
decoded waveform into that model's inputs.

Essentia's most-reported silent bug is feeding a model audio at the wrong sample rate; musicnn's imported
weights tag differently from musicnn when they see per-chunk spectrograms instead of musicnn's own input
(one log-mel of the whole file, float16-rounded, cut into 187-frame patches). So every run stores its
contract (``W/contract.json``, derived from ``config.json`` and checked against it), and ``predict``,
``evaluate``, ``tag`` and the ONNX export all go through ``Contract.model_inputs``:

* ``chunks`` (every model jaxtag trains): resample to ``sample_rate``, cut non-overlapping chunks of
  ``chunk_samples``; the tail is dropped, a file shorter than one chunk is zero-padded to one. The model
  computes its log-mel (spectrogram models) per chunk on the device, as in training.
* ``musicnn_patches`` (runs imported from musicnn): resample to 16 kHz, zero-pad to at least 3 s, one
  centred log-mel of the whole file (librosa >= 0.9 padding, float16-rounded mel power, musicnn's
  ``log10(10000 x + 1)`` in float32), patches of 187 frames every ``patch_hop`` frames (187: no overlap;
  musicnn's ``input_overlap`` in seconds otherwise), the trailing partial patch dropped. The model takes
  these ``(patches, 187, 96)`` log-mel arrays directly.

Computed with NumPy on the host (no device, no compilation per file length), so decoding workers can call
it; only the filterbank is shared with ``models.logmel`` (whose import brings in jax). The STFT runs in
float64 over blocks of frames and is stored as complex64, as librosa does, so memory stays bounded for
hours-long files.
"""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np

from jaxtag.core import choices, rundir

KINDS = choices.INPUT_PIPELINES
PATCH_FRAMES = 187          # librosa.time_to_frames(3, sr=16000, n_fft=512, hop_length=256) + 1
VERSION = 1
_BLOCK_FRAMES = 4096        # STFT frames per block: 4096 x 512 float64 = 16 MB whatever the file length


@dataclasses.dataclass(frozen=True)
class Contract:
  """What a run's model expects. ``logmel`` holds the log-mel parameters of spectrogram front-ends (for
  ``chunks`` the model computes it itself; for ``musicnn_patches`` this module does), else ``None``."""
  kind: str
  sample_rate: int
  chunk_samples: int
  logmel: dict | None = None
  patch_frames: int = 0
  patch_hop: int = 0
  version: int = VERSION

  def __post_init__(self):
    if self.kind not in KINDS:
      raise choices.ConfigError(f"unknown preprocessing contract {self.kind!r}; valid: {', '.join(KINDS)}")
    if self.kind == "musicnn_patches" and not (self.logmel and self.patch_frames > 0 and self.patch_hop > 0):
      raise choices.ConfigError("a musicnn_patches contract needs logmel parameters, patch_frames and patch_hop")

  @property
  def input_shape(self) -> tuple[int, ...]:
    """Shape of one model input: ``(chunk_samples,)`` or ``(patch_frames, n_mels)``."""
    if self.kind == "chunks":
      return (self.chunk_samples,)
    return (self.patch_frames, int(self.logmel["n_mels"]))

  @property
  def seconds_per_input(self) -> float:
    """Audio time between consecutive inputs (the taggram's time step)."""
    if self.kind == "chunks":
      return self.chunk_samples / self.sample_rate
    return self.patch_hop * int(self.logmel["hop"]) / self.sample_rate

  def model_inputs(self, wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """A decoded mono waveform at ``sample_rate`` -> ``(n, *input_shape)`` float32 model inputs.

    Audio at another rate is resampled (soxr HQ, as the data layer decodes) first, so no caller can feed
    the model a rate it was not trained on."""
    wave = np.asarray(wave, np.float32)
    if wave.ndim != 1:
      raise ValueError(f"model_inputs takes mono audio (samples,), got shape {wave.shape}; mix channels first")
    if int(sample_rate) != self.sample_rate:
      import soxr
      wave = soxr.resample(wave, int(sample_rate), self.sample_rate, quality="HQ").astype(np.float32)
    if len(wave) < self.chunk_samples:
      wave = np.pad(wave, (0, self.chunk_samples - len(wave)))
    if self.kind == "chunks":
      n = len(wave) // self.chunk_samples
      return wave[:n * self.chunk_samples].reshape(n, self.chunk_samples)
    spec = logmel_numpy(wave, **self.logmel, sample_rate=self.sample_rate)
    starts = range(0, len(spec) - self.patch_frames + 1, self.patch_hop)
    return np.stack([spec[t:t + self.patch_frames] for t in starts]).astype(np.float32)

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, d: dict) -> "Contract":
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
      raise choices.ConfigError(f"unknown preprocessing-contract fields {unknown}")
    if int(d.get("version", VERSION)) > VERSION:
      raise choices.ConfigError(f"preprocessing contract version {d['version']} is newer than this jaxtag ({VERSION})")
    return cls(**d)


def musicnn_hop_frames(overlap_seconds: float, sample_rate: int = 16000, n_fft: int = 512, hop: int = 256) -> int:
  """musicnn's ``input_overlap`` (seconds) as its patch hop in frames: ``librosa.time_to_frames(s)``."""
  return max(1, int(math.floor((overlap_seconds * sample_rate - n_fft // 2) / hop)))


def _logmel_params(model_cfg) -> dict:
  lm = model_cfg.logmel
  out = {"n_fft": int(lm.n_fft), "hop": int(lm.hop), "n_mels": int(lm.n_mels), "fmin": float(lm.fmin),
         "fmax": float(lm.fmax), "log_scale": float(lm.log_scale), "float16_rounding": bool(lm.musicnn_compat)}
  style = str(lm.get("style", "librosa"))
  if style != "librosa":      # recorded only when not the default, so the contracts of existing runs stay equal
    out["style"] = style
  return out


def pipeline_of(config) -> str:
  """The run's ``data.input_pipeline``; runs written before the key existed are ``musicnn_patches`` exactly
  when they carry musicnn's float16 rounding (only the musicnn import sets it)."""
  kind = config.data.get("input_pipeline", None)
  if kind:
    return str(kind)
  musicnn = str(config.model.name) in ("musicnn", "musicnn_vgg") and bool(config.model.logmel.get("musicnn_compat"))
  return "musicnn_patches" if musicnn else "chunks"


def from_config(config, overlap_seconds: float = 0.0) -> Contract:
  """The contract a config implies. ``overlap_seconds`` (musicnn runs only) is musicnn's ``input_overlap``."""
  kind = pipeline_of(config)
  choices.check("data.input_pipeline", kind, KINDS)
  sr = int(config.data.sample_rate)
  chunk = int(round(float(config.data.chunk_seconds) * sr))
  spectral = str(config.model.name) not in ("waveform", "samplecnn", "samplecnn_multi", "samplecnn_se")
  logmel = _logmel_params(config.model) if spectral else None
  if kind == "chunks":
    if overlap_seconds:
      raise choices.ConfigError("patch overlap applies to imported musicnn runs only (this run is tagged in chunks)")
    return Contract("chunks", sr, chunk, logmel)
  if logmel is None:
    raise choices.ConfigError(f"model {config.model.name!r} has no log-mel front-end: it cannot take musicnn patches")
  hop = musicnn_hop_frames(overlap_seconds, sr, logmel["n_fft"], logmel["hop"]) if overlap_seconds else PATCH_FRAMES
  return Contract("musicnn_patches", sr, chunk, logmel, PATCH_FRAMES, hop)


def save(workdir, config) -> None:
  """Writes ``W/contract.json`` (the contract ``config`` implies)."""
  rundir.path(workdir, rundir.CONTRACT).write_text(json.dumps(from_config(config).to_dict(), indent=1))


def for_run(workdir, config, overlap_seconds: float = 0.0) -> Contract:
  """The contract of the run in ``workdir``: ``contract.json`` where the run has one (it must agree with
  ``config.json``: a disagreement means an edited run and fails loudly), else derived from the config."""
  derived = from_config(config)
  path = rundir.path(workdir, rundir.CONTRACT)
  if path.exists():
    stored = Contract.from_dict(json.loads(path.read_text()))
    if stored != derived:
      diff = {k: (v, derived.to_dict()[k]) for k, v in stored.to_dict().items() if v != derived.to_dict()[k]}
      raise choices.ConfigError(f"{path} disagrees with config.json (stored, derived): {diff}")
  return from_config(config, overlap_seconds) if overlap_seconds else derived


def logmel_numpy(wave: np.ndarray, *, n_fft: int, hop: int, n_mels: int, fmin: float, fmax: float,
                 log_scale: float, float16_rounding: bool, sample_rate: int) -> np.ndarray:
  """``(frames, n_mels)`` float32 log-mel of a whole waveform, as ``librosa.feature.melspectrogram``
  (centred, zero padding, periodic Hann, power 2, Slaney mel) then musicnn's ``log10(scale * x + 1)``;
  with ``float16_rounding`` the mel power is first rounded to float16 (musicnn's ``.astype(np.float16)``)."""
  from jaxtag.models.logmel import mel_filterbank
  fb = mel_filterbank(int(sample_rate), int(n_fft), int(n_mels), float(fmin), float(fmax))   # (bins, mels)
  padded = np.pad(np.asarray(wave, np.float32), n_fft // 2)
  n_frames = 1 + (len(padded) - n_fft) // hop
  window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)                          # periodic, float64
  frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop][:n_frames]
  out = np.empty((n_frames, n_mels), np.float32)
  for a in range(0, n_frames, _BLOCK_FRAMES):
    spec = np.fft.rfft(window * frames[a:a + _BLOCK_FRAMES], axis=1).astype(np.complex64)
    power = (np.abs(spec) ** 2).astype(np.float32)
    out[a:a + _BLOCK_FRAMES] = power @ fb
  if float16_rounding:
    out = out.astype(np.float16).astype(np.float32)
  return np.log10(np.float32(log_scale) * out + np.float32(1)).astype(np.float32)
