"""The paper's findings measured on any run: ``python -m jaxtag.analyze {scaling,popularity,baseline,exclusive}``.

Each sub-command reads what ``jaxtag.evaluate`` left in ``W/report`` (``eval_<split>.json``,
``predictions_<split>.npz``), so no model is re-run; ``baseline`` trains the per-tag GBT baseline and writes the
same files, so it becomes one more row and one more column of the results.
"""
