"""Front-end + back-end = one tagging model with the registry's contract.

``model(wave, train) -> logits`` with ``wave`` ``(batch, samples)`` float32 at 16 kHz and float32 logits
``(batch, n_tags)`` whatever the compute dtype; ``model.embed(wave)`` gives the back-end's penultimate
features (after the dense layer's BN, before the last dropout).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


class Tagger(nnx.Module):

  def __init__(self, frontend: nnx.Module, backend: nnx.Module):
    self.frontend = frontend
    self.backend = backend

  def __call__(self, wave: jax.Array, train: bool = False) -> jax.Array:
    return self.backend(self.frontend(wave, train), train).astype(jnp.float32)

  def embed(self, wave: jax.Array, train: bool = False) -> jax.Array:
    return self.backend.embed(self.frontend(wave, train), train).astype(jnp.float32)
