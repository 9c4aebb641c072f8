"""Tagging models: ``registry.build_model(config.model, n_tags, sample_rate=..., rngs=...)``, their layers and
on-device log-mel, the parameter table (``params``) and a run's preprocessing contract (``contract``).

May import ``core``. Imports nothing on its own: ``contract`` runs in decode workers, which never import jax.
"""
