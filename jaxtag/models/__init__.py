"""Tagging models: ``registry.build_model(config.model, n_tags, sample_rate=..., rngs=...)``."""
from jaxtag.models.layers import count_params
from jaxtag.models.registry import MODELS, build_model

__all__ = ["MODELS", "build_model", "count_params"]
