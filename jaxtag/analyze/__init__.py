"""The paper's findings measured on any run: ``jaxtag analyze {scaling,popularity,baseline,exclusive,probe}``,
and the study (``study``: waveform vs spectrogram over training-set size, with seeds).

Each sub-command reads what ``jaxtag.evaluation.evaluate`` left in ``W/report`` (``eval_<split>.json``,
``predictions_<split>.npz``), so no model is re-run; ``baseline`` trains the per-tag GBT baseline and writes the
same files, so it becomes one more row and one more column of the results. May import every other folder.
"""
