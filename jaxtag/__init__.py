"""jaxtag: music auto-tagging at scale in JAX/Flax (waveform vs spectrogram front-ends, one back-end).

The folders follow the data's one-way flow; each may import the ones before it, never after:

  core/        errors, config choices, command line, logs, paths, processes, mesh, metrics, plots
  data/        file -> index -> decode -> grain pipeline (numpy only; runs in loader workers)
  models/      the model registry, layers, log-mel, and a run's preprocessing contract
  training/    train state, the pure step, the loop, schedules, checkpoints, metrics
  serving/     the one inference path, and what is built on it: predict, library tagging, ONNX export
  evaluation/  song-level evaluation of a run and its report
  analyze/     the paper's analyses and the study (waveform vs spectrogram over training-set size)
  tools/       importers of outside weights (musicnn)

``jaxtag SUBCOMMAND`` (``jaxtag/__main__.py``) is the command; the ``python -m jaxtag.main|evaluate|predict|tag|
export|study|summary`` modules at this level are those subcommands under their historical names.
"""
__version__ = "0.1.0"
