"""Song-level evaluation of a run (``evaluate``: ROC-AUC, PR-AUC, sqrt(MSE), ensembles) and its report
(``report``: predictions files, per-tag tables and plots).

May import ``core``, ``data``, ``models``, ``training`` and ``serving``.
"""
