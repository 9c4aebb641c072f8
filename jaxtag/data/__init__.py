"""Audio data: dataset indexes (index, mtt, msd, manifest), decoding (decode), grain pipelines (pipeline),
the embedded generated corpus (generate, synth) and the ``summary`` inspection command.

Numpy-only on purpose: these modules run inside grain worker processes and never import jax.
"""
