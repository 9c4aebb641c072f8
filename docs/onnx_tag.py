"""Tag audio files with a model from ``python -m jaxtag.export``, using onnxruntime, NumPy and soundfile only.

  pip install onnxruntime numpy soundfile soxr
  python onnx_tag.py model.onnx song.mp3 [more files ...]

No jaxtag import: everything the model needs is in its metadata (tags, sample rate, windowing).
"""
import json
import sys

import numpy as np
import onnxruntime as ort
import soundfile as sf


def load_model(path):
  session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
  meta = session.get_modelmeta().custom_metadata_map
  return session, json.loads(meta["jaxtag.tags"]), json.loads(meta["jaxtag.windows"])


def windows_of(audio, rate, w):
  """Mono float32 at the model's rate, cut the way the model was trained (or as musicnn does)."""
  if audio.ndim == 2:
    audio = audio.mean(axis=1)
  if rate != w["sample_rate"]:
    import soxr
    audio = soxr.resample(audio, rate, w["sample_rate"], quality="HQ")
  audio = np.asarray(audio, np.float32)
  audio = np.pad(audio, (0, max(0, w["min_samples"] - len(audio))))
  audio = np.pad(audio, w["pad_samples"])
  n = 1 + (len(audio) - w["window_samples"]) // w["hop_samples"]
  return np.stack([audio[i * w["hop_samples"]:i * w["hop_samples"] + w["window_samples"]] for i in range(n)])


def tag(session, tags, w, path, top=10, batch=16):
  """``(mean probabilities over windows, top tags, taggram)`` of one file."""
  audio, rate = sf.read(path, dtype="float32")
  x = windows_of(audio, rate, w)
  name = session.get_inputs()[0].name
  taggram = np.concatenate([session.run(None, {name: x[i:i + batch]})[0] for i in range(0, len(x), batch)])
  mean = taggram.mean(axis=0)
  return mean, [(tags[i], float(mean[i])) for i in np.argsort(-mean, kind="stable")[:top]], taggram


if __name__ == "__main__":
  session, tags, w = load_model(sys.argv[1])
  for f in sys.argv[2:]:
    mean, best, _ = tag(session, tags, w, f)
    print(f"{f}: " + ", ".join(f"{t} {s:.3f}" for t, s in best))
