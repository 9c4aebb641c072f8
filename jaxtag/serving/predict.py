"""``python -m jaxtag.predict FILE_OR_DIR ... --workdir=W [--top=10] [--taggram=out.png]
[--embeddings=out.npz] [--json]``: tag your own audio.

What users of musicnn and of Won et al.'s models ask for most (``peers_and_protocol.md`` §4): tags, a taggram
and embeddings for their own files, any format. Each file is decoded by the data layer (anything soundfile
reads, any sample rate, resampled to the run's), turned into model inputs by the run's preprocessing contract
(``jaxtag.models.contract``: the model's non-overlapping chunks, a file shorter than one chunk zero-padded to one; for
runs imported from musicnn, musicnn's own 187-frame patches of one whole-file log-mel), and its tags are the
mean of the per-input sigmoids, as in evaluation (and musicnn's ``top_tags``). A
file that fails prints one line naming it and the reason; the others continue; the exit status is 1 if any
failed. Works on trained runs and on runs written by the musicnn weight import alike.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np
from absl import app, flags, logging



def define_flags():
  """Flags exist only when run as a program, so that tools can be imported together (tests)."""
  flags.DEFINE_string("workdir", None, "Run directory (trained, or imported musicnn weights).")
  from jaxtag.core import cli
  cli.checkpoint_flag()
  flags.DEFINE_integer("top", 10, "Tags printed per file.", lower_bound=1)
  flags.DEFINE_string("taggram", "", "PNG of per-chunk tag probabilities (one file; several: out_<name>.png).")
  flags.DEFINE_string("embeddings", "", "npz of penultimate features per chunk of every file.")
  flags.DEFINE_integer("batch", 16, "Chunks per forward pass.", lower_bound=1)
  flags.DEFINE_float("input_overlap", 0.0, "Imported musicnn runs: musicnn's input_overlap, the hop between "
                     "187-frame patches in seconds (0: no overlap, as musicnn's default).", lower_bound=0.0)
  flags.register_validator("taggram", lambda v: not v or v.lower().endswith(".png"),
                           "--taggram is a PNG file: its name must end in .png")
  flags.DEFINE_bool("json", False, "Print one JSON object per file (one per line).")


FLAGS = flags.FLAGS


def list_files(paths) -> list[str]:
  """Files as given, and every non-hidden file under each directory (sorted): a directory is tagged whole."""
  out = []
  for p in paths:
    if os.path.isdir(p):
      for root, dirs, files in os.walk(p):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out += [os.path.join(root, f) for f in sorted(files) if not f.startswith(".")]
    else:
      out.append(p)
  return out


def chunk_wave(wave: np.ndarray, n: int) -> np.ndarray:
  """``(C, n)`` non-overlapping chunks; the trailing partial chunk is dropped (as musicnn and evaluation do),
  but a file shorter than one chunk is zero-padded to one rather than rejected."""
  wave = np.asarray(wave, np.float32)
  if len(wave) < n:
    wave = np.pad(wave, (0, n - len(wave)))
  c = len(wave) // n
  return wave[:c * n].reshape(c, n)


def tag_files(model, files, *, top: int = 10, want_embeddings: bool = False):
  """``(results, failures)`` of an ``inference.RunModel``: per good file its taggram, mean scores and top tags
  (and chunk embeddings, from the same forward pass, when the model was built with ``embeddings=True``); per
  bad file its reason."""
  from jaxtag.data import decode
  results, failures = [], []
  for path in files:
    try:
      wave = decode.load_audio(path, model.sample_rate)
    except Exception as e:   # noqa: BLE001  any failure of one file must not stop the others
      failures.append({"file": path, "error": getattr(e, "reason", None) or f"{type(e).__name__}: {e}"})
      continue
    chunks = model.contract.model_inputs(wave, model.sample_rate)
    taggram, embeddings = model.run(chunks)
    mean = taggram.mean(axis=0)
    order = np.argsort(-mean, kind="stable")[:top]
    r = {"file": path, "seconds": len(wave) / model.sample_rate, "chunks": len(chunks), "taggram": taggram,
         "scores": mean, "top": [(str(model.tags[t]), float(mean[t])) for t in order]}
    if want_embeddings:
      r["embeddings"] = embeddings
    results.append(r)
  return results, failures


def taggram_paths(out: str, results) -> list[str]:
  """``out`` for one file; ``<out stem>_<file stem>.png`` for several."""
  if len(results) == 1:
    return [out]
  stem, ext = os.path.splitext(out)
  return [f"{stem}_{os.path.splitext(os.path.basename(r['file']))[0]}{ext or '.png'}" for r in results]


def save_embeddings(path: str, results, tags) -> None:
  """All files' chunk embeddings in one npz: ``embeddings`` (C, D), ``chunk_file`` (C,) into ``files``."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  np.savez(path, files=np.array([r["file"] for r in results], str),
           embeddings=np.concatenate([r["embeddings"] for r in results]),
           chunk_file=np.concatenate([np.full(r["chunks"], i, np.int32) for i, r in enumerate(results)]),
           taggram=np.concatenate([r["taggram"] for r in results]), tags=np.asarray(tags, str))


def main(argv):
  if len(argv) < 2 or not FLAGS.workdir:
    raise app.UsageError("usage: python -m jaxtag.predict FILE_OR_DIR ... --workdir=W")
  logging.set_verbosity(logging.WARNING)   # stdout/stderr carry the tags and the per-file errors only
  files = list_files(argv[1:])
  from jaxtag.serving import inference
  tagger = inference.RunModel(FLAGS.workdir, FLAGS.checkpoint, batch=FLAGS.batch,   # not a run, no such step:
                              embeddings=bool(FLAGS.embeddings), input_overlap=FLAGS.input_overlap)   # one line
  results, failures = tag_files(tagger, files, top=FLAGS.top, want_embeddings=bool(FLAGS.embeddings))
  for r in results:
    if FLAGS.json:
      print(json.dumps({"file": r["file"], "seconds": r["seconds"], "chunks": r["chunks"],
                        "tags": [{"tag": t, "score": s} for t, s in r["top"]]}))
    else:
      print(f"{r['file']}: " + ", ".join(f"{t} {s:.3f}" for t, s in r["top"]))
  for f in failures:
    print(f"error: {f['file']}: {f['error']}", file=sys.stderr)
  if FLAGS.taggram and results:
    from jaxtag.core import plots
    for r, path in zip(results, taggram_paths(FLAGS.taggram, results)):
      plots.taggram(path, r["taggram"], tagger.tags, tagger.contract.seconds_per_input,
                    title=os.path.basename(r["file"]))
  if FLAGS.embeddings and results:
    save_embeddings(FLAGS.embeddings, results, tagger.tags)
  if failures:
    sys.exit(1)


if __name__ == "__main__":
  from jaxtag.core import cli
  cli.run(main, define_flags, required=("workdir",))
