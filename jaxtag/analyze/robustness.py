"""``python -m jaxtag.analyze robustness W [W2 ...] [--perturb=KIND:S1,S2 ...] [--split=test]``.

A run's test scores under the perturbations of Won et al.'s robustness study (``training/robustness.py``)
plus an MP3 round trip, each at several strengths, applied to every decoded test song before it is cut into
the model's inputs (the run's own evaluation protocol, ``eval.protocol``):

* ``time_stretch`` (rate; librosa's phase vocoder, as theirs): the song lasts ``1 / rate`` as long, same pitch.
* ``pitch_shift`` (semitones; librosa: stretch then resample, as theirs): same length, pitch moved.
* ``gain`` (dB; their "dynamic range" multiplies by a factor): ``x * 10 ** (dB / 20)``, no clipping, as theirs.
* ``white_noise`` (SNR in dB): Gaussian noise scaled so that ``10 log10(P(x) / P(noise)) = SNR`` exactly for
  each song (theirs adds noise of a fixed standard deviation, whose SNR varies from song to song); the noise
  of a song is seeded by its audio, so a rerun draws the same noise.
* ``mp3`` (libsndfile's ``compression_level`` in [0, 1), constant bitrate; the table reports the bitrate
  measured from the encoded size): encode and decode with libsndfile's LAME/mpg123, then undo the decoder's
  delay (found by cross-correlation) and trim to the original length.

Writes ``W/report/robustness_<split>.{json,md,png}``: ROC-AUC and PR-AUC (macro, as ``evaluate``) per
perturbation and strength, beside the clean score; the plot has one panel per perturbation.
"""
from __future__ import annotations

import dataclasses
import io
import json
import os
import zlib

import numpy as np

from jaxtag.core import choices

KINDS = ("time_stretch", "pitch_shift", "gain", "white_noise", "mp3")
UNITS = {"time_stretch": "rate", "pitch_shift": "semitones", "gain": "dB", "white_noise": "SNR dB",
         "mp3": "compression level"}
DEFAULT_STRENGTHS = {
    "time_stretch": (0.7, 0.85, 1.2, 1.4),
    "pitch_shift": (-4.0, -2.0, 2.0, 4.0),
    "gain": (-20.0, -10.0, 10.0, 20.0),
    "white_noise": (40.0, 20.0, 10.0, 0.0),
    "mp3": (0.5, 0.75, 0.9, 0.95),
}
_MAX_MP3_DELAY = 4096   # samples searched for the decoder's delay


@dataclasses.dataclass(frozen=True)
class Perturbation:
  """One perturbation at one strength: ``perturbation(wave, sample_rate) -> wave`` (float32 mono)."""
  kind: str
  strength: float

  def __post_init__(self):
    choices.check("robustness perturbation", self.kind, KINDS)
    if self.kind == "time_stretch" and not self.strength > 0:
      raise choices.ConfigError(f"time_stretch rate must be > 0, got {self.strength}")
    if self.kind == "mp3" and not 0 <= self.strength < 1:
      raise choices.ConfigError(f"mp3 compression level must be in [0, 1), got {self.strength}")

  def __call__(self, wave: np.ndarray, sample_rate: int) -> np.ndarray:
    return getattr(self, f"_{self.kind}")(np.asarray(wave, np.float32), int(sample_rate)).astype(np.float32)

  def _time_stretch(self, x, sr):
    return _librosa().effects.time_stretch(x, rate=float(self.strength))

  def _pitch_shift(self, x, sr):
    return _librosa().effects.pitch_shift(x, sr=sr, n_steps=float(self.strength))

  def _gain(self, x, sr):
    return x * np.float32(10.0 ** (self.strength / 20.0))

  def _white_noise(self, x, sr):
    rng = np.random.default_rng(zlib.crc32(x.tobytes()))
    noise = rng.standard_normal(len(x))
    power = np.mean(np.square(x, dtype=np.float64))
    if power == 0:
      return x
    noise *= np.sqrt(power / (np.mean(noise ** 2) * 10.0 ** (self.strength / 10.0)))
    return x + noise

  def _mp3(self, x, sr):
    return mp3_round_trip(x, sr, self.strength)[0]


def _librosa():
  try:
    import librosa
  except ImportError:
    raise choices.ConfigError("time_stretch and pitch_shift need librosa: pip install 'jaxtag[robustness]'") from None
  return librosa


def mp3_round_trip(x: np.ndarray, sr: int, level: float) -> tuple[np.ndarray, float]:
  """``(decoded, kbps)``: ``x`` through an MP3 file at ``level`` (constant bitrate), delay undone, same length."""
  import soundfile as sf
  if "MP3" not in sf.available_formats():
    raise choices.ConfigError("this libsndfile cannot write MP3 (needs libsndfile >= 1.1 with LAME)")
  buf = io.BytesIO()
  sf.write(buf, x, sr, format="MP3", compression_level=float(level), bitrate_mode="CONSTANT")
  kbps = len(buf.getvalue()) * 8 / (len(x) / sr) / 1000
  buf.seek(0)
  y, _ = sf.read(buf, dtype="float32")
  y = y if y.ndim == 1 else y.mean(axis=1)
  lag = _delay(x, y)
  y = y[lag:lag + len(x)]
  return np.pad(y, (0, len(x) - len(y))), kbps


def _delay(x: np.ndarray, y: np.ndarray) -> int:
  """The lag (0.._MAX_MP3_DELAY) at which ``y`` best matches ``x``, by cross-correlation of an early window."""
  n = min(len(x), 16000)
  if n < 64 or len(y) < n:
    return 0
  a = x[:n].astype(np.float64)
  b = y[:n + _MAX_MP3_DELAY].astype(np.float64)
  size = 1 << int(np.ceil(np.log2(len(a) + len(b))))
  corr = np.fft.irfft(np.fft.rfft(b, size) * np.conj(np.fft.rfft(a, size)), size)[:_MAX_MP3_DELAY + 1]
  return int(np.argmax(corr)) if np.any(a) else 0


def parse(specs: list[str]) -> list[Perturbation]:
  """``["gain:-10,10", "mp3"]`` -> perturbations (a kind without strengths takes its defaults); [] = all."""
  out = []
  for spec in specs or list(KINDS):
    kind, _, values = spec.partition(":")
    try:
      strengths = [float(v) for v in values.split(",")] if values else list(DEFAULT_STRENGTHS.get(kind, ()))
    except ValueError:
      raise choices.ConfigError(f"bad --perturb {spec!r}: expected KIND:S1,S2 with numbers") from None
    out += [Perturbation(kind, s) for s in strengths] or [Perturbation(kind, 0.0)]
  return out


class _Scorer:
  """One run's model, loaded and compiled once, scored over one split under any perturbation."""

  def __init__(self, workdir: str, split: str, which="best", batch: int = 0, protocol: str = ""):
    from jaxtag.core import sharding
    from jaxtag.data import index as index_lib
    from jaxtag.data import protocols
    from jaxtag.models import contract
    from jaxtag.serving import inference
    from jaxtag.training import checkpoint, step as step_lib
    self.mesh = sharding.make_mesh()
    self.config, self.model_tags, model, self.step = checkpoint.load_for_inference(workdir, which, self.mesh)
    idx = index_lib.load_songs(self.config.data)
    self.songs, self.data_tags = idx.split(split), idx.tags
    if not self.songs:
      raise choices.ConfigError(f"run {workdir} has no {split} songs")
    self.targets = np.stack([s.targets for s in self.songs])
    self.protocol = protocol or str(self.config.eval.get("protocol", "chunks"))
    self.inputs = protocols.inputs_for(contract.for_run(workdir, self.config), self.protocol)
    graphdef, self.params, self.rest = step_lib.split_model(model)
    self.eval_fn = inference.make_eval_fn(graphdef, self.mesh)
    batch = batch or int(self.config.eval.batch_size)
    self.batch = -(-batch // self.mesh.devices.size) * self.mesh.devices.size

  def __call__(self, perturbation=None) -> dict:
    from jaxtag.core import scoring
    from jaxtag.data import protocols
    from jaxtag.evaluation import evaluate
    from jaxtag.serving import inference
    inputs = self.inputs if perturbation is None else protocols.Perturbed(self.inputs, perturbation)
    logits, chunk_song, _ = inference.predict_on_mesh(self.eval_fn, self.params, self.rest, self.config.data,
                                                      self.songs, global_batch=self.batch, mesh=self.mesh,
                                                      contract=inputs)
    probs = evaluate.align_columns(scoring.sigmoid(logits), self.model_tags, self.data_tags)
    song_scores = scoring.aggregate_chunks(probs, chunk_song, len(self.songs))
    seen = ~np.isnan(song_scores).any(axis=1)
    r = scoring.macro_scores(self.targets[seen], song_scores[seen])
    return {"roc_auc": float(r["roc_auc"]), "pr_auc": float(r["pr_auc"]), "songs": int(seen.sum())}


def run(workdirs: list[str], split: str = "test", specs=(), which="best", batch: int = 0, out: str = "") -> dict:
  """Scores every run of ``workdirs`` clean and under each perturbation; writes the report of each run
  (in ``out/<run name>/`` when ``out`` is given)."""
  perturbations = parse(list(specs))
  results = {}
  for workdir in workdirs:
    scorer = _Scorer(str(workdir), split, which, batch)
    rows = []
    for p in perturbations:
      row = {"kind": p.kind, "strength": p.strength, "unit": UNITS[p.kind], **scorer(p)}
      if p.kind == "mp3":   # the bitrate this level gives at the run's rate (a 1-s test tone's file size)
        sr = int(scorer.config.data.sample_rate)
        tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(sr) / sr)).astype(np.float32)
        row["kbps"] = round(mp3_round_trip(tone, sr, p.strength)[1], 1)
      rows.append(row)
    result = {"workdir": str(workdir), "split": split, "model": str(scorer.config.model.name),
              "step": int(scorer.step), "protocol": scorer.protocol, "clean": scorer(None), "rows": rows}
    target = os.path.join(out, os.path.basename(str(workdir).rstrip("/"))) if out else _report_dir(workdir)
    result["files"] = write(result, target, split)
    results[str(workdir)] = result
  return results


def _report_dir(workdir) -> str:
  from jaxtag.evaluation import report
  return report.report_dir(workdir)


def markdown(result: dict) -> str:
  c = result["clean"]
  lines = [f"# Robustness: {result['model']} step {result['step']} ({result['workdir']}), {result['split']}, "
           f"{result['protocol']} protocol",
           "", "| perturbation | strength | ROC-AUC | PR-AUC | change in ROC-AUC |", "|---|---|---|---|---|",
           f"| clean | - | {100 * c['roc_auc']:.2f} | {100 * c['pr_auc']:.2f} | - |"]
  for r in result["rows"]:
    strength = f"{r['strength']:g} {r['unit']}" + (f" ({r['kbps']:g} kbps)" if "kbps" in r else "")
    lines.append(f"| {r['kind']} | {strength} | {100 * r['roc_auc']:.2f} | {100 * r['pr_auc']:.2f} | "
                 f"{100 * (r['roc_auc'] - c['roc_auc']):+.2f} |")
  return "\n".join(lines) + "\n"


def write(result: dict, out_dir: str, split: str) -> dict:
  from jaxtag.core import plots
  os.makedirs(out_dir, exist_ok=True)
  base = os.path.join(out_dir, f"robustness_{split}")
  with open(base + ".json", "w") as f:
    json.dump({k: v for k, v in result.items() if k != "files"}, f, indent=1)
  with open(base + ".md", "w") as f:
    f.write(markdown(result))
  plots.robustness(base + ".png", result["rows"], result["clean"], title=f"{result['model']}, {split}")
  return {"json": base + ".json", "md": base + ".md", "png": base + ".png"}
