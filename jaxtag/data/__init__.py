"""Audio data: dataset indexes (index, mtt, msd, manifest), decoding (decode), grain pipelines (pipeline),
the embedded generated and rendered corpora (generate, synth, render/), packing (pack) and the ``stats``
inspection command.

Numpy-only on purpose: these modules run inside grain worker processes and never import jax. May import ``core``.
"""
