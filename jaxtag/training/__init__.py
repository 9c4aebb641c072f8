"""Training: the train state made on the mesh (``train_state``), the pure step (``step``), the loop in named
phases (``train``), its input feed (``feed``), schedules and early stopping, what trains (``trainable``),
starting from another run (``transfer``), checkpoints (``checkpoint``), metrics and profiling.

May import ``core``, ``data`` and ``models``; ``train`` also runs validation through ``serving.inference``.
"""
