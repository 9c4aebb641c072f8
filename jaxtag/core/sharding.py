"""The device mesh and the two shardings jaxtag needs: replicated state, batch split along ``data``.

Pure data parallelism: every parameter is replicated (``P()``), every batch is split along its first
axis over all devices of all processes (``P('data')``). Each process builds only its own slice of the
global batch and ``jax.make_array_from_process_local_data`` assembles the global array.
"""
from __future__ import annotations

import jax
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

from jaxtag.core.choices import ConfigError


def make_mesh(devices=None) -> jax.sharding.Mesh:
  """A 1-D mesh over all devices (or ``devices``), axis ``data``; Auto axes so XLA propagates shardings."""
  if devices is None:
    return jax.make_mesh((jax.device_count(),), ("data",), axis_types=(AxisType.Auto,))
  return jax.sharding.Mesh(np.asarray(devices), ("data",), axis_types=(AxisType.Auto,))


def replicated(mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def data_sharded(mesh) -> NamedSharding:
  return NamedSharding(mesh, P("data"))


def local_batch_size(global_batch: int, mesh) -> int:
  """This process's share of a global batch; the global batch must split evenly over all devices."""
  n_dev = mesh.devices.size
  if global_batch % n_dev:
    raise ConfigError(f"global batch {global_batch} does not split over {n_dev} devices; "
                     f"use a multiple of {n_dev} (--config.train.global_batch_size / --config.eval.batch_size)")
  return global_batch // jax.process_count()


def to_global(batch: dict, mesh) -> dict:
  """Process-local numpy batch -> global ``jax.Array``s sharded along ``data``."""
  sharding = data_sharded(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in batch.items()}

