"""``jaxtag SUBCOMMAND [flags]`` (also ``python -m jaxtag SUBCOMMAND``): every jaxtag tool under one command.

Each subcommand runs its module exactly as ``python -m MODULE`` would (``runpy`` with ``alter_sys``), so its
flags, ``--help``, the one-line errors of ``jaxtag.core.cli`` and grain's worker processes (which re-import
``__main__``) behave the same either way.
"""
from __future__ import annotations

import runpy
import sys

# name -> (module, one line of help); the order is the order of the data's flow.
SUBCOMMANDS = {
  "generate": ("jaxtag.data.generate", "write the fast numpy corpus the tests use (a manifest and audio)"),
  "render": ("jaxtag.data.render.corpus", "render the SoundFont corpus (real instruments, pieces, artists)"),
  "data-stats": ("jaxtag.data.stats", "a dataset's split sizes, tags and tag prevalence, from its index"),
  "pack": ("jaxtag.data.pack", "decode a split once into ArrayRecord shards for fast training input"),
  "params": ("jaxtag.models.params", "a config's model: parameter table and total"),
  "train": ("jaxtag.main", "train a config in a workdir; the same command again resumes"),
  "evaluate": ("jaxtag.evaluation.evaluate", "song-level ROC-AUC / PR-AUC of a run on a split, and its report"),
  "predict": ("jaxtag.serving.predict", "tag a few audio files (top tags, taggram, embeddings)"),
  "tag": ("jaxtag.serving.tag", "tag a whole library into resumable output shards"),
  "export": ("jaxtag.serving.export", "a run as one ONNX file (raw waveform in, tag scores out)"),
  "analyze": ("jaxtag.analyze", "scaling, popularity, baseline, exclusive, probe"),
  "study": ("jaxtag.analyze.study", "waveform vs spectrogram over training-set size, with seeds"),
  "import-musicnn": ("jaxtag.tools.import_musicnn", "the authors' musicnn weights as a jaxtag run"),
}


def usage() -> str:
  width = max(map(len, SUBCOMMANDS))
  rows = "\n".join(f"  {name:<{width}}  {text}" for name, (_, text) in SUBCOMMANDS.items())
  return (f"usage: jaxtag SUBCOMMAND [flags]   (jaxtag SUBCOMMAND --help for its flags)\n\nsubcommands:\n{rows}\n")


def main(argv: list[str] | None = None) -> None:
  argv = sys.argv[1:] if argv is None else list(argv)
  if not argv or argv[0] in ("-h", "--help", "help"):
    print(usage(), end="")
    return
  name = argv[0]
  if name not in SUBCOMMANDS:
    print(f"error: unknown subcommand {name!r}; choose from {', '.join(SUBCOMMANDS)}", file=sys.stderr)
    sys.exit(2)
  sys.argv = [f"jaxtag {name}", *argv[1:]]
  runpy.run_module(SUBCOMMANDS[name][0], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
  main()
