"""``gs://`` paths need two optional packages: checked at start, so a run fails with the fix, not later.

etils' ``epath`` (``config.json``, ``metrics.jsonl``, manifests, audio) reaches ``gs://`` through
``gcsfs``; TensorBoard event files on ``gs://`` go through ``google-cloud-storage``. Neither is a core
dependency (most runs are local): they are the ``[gcs]`` extra, which ``launch/tpu_pod.sh`` and
``launch/slurm_gpu.sbatch`` install. Orbax itself reaches ``gs://`` through tensorstore (always present).
"""
from __future__ import annotations

import importlib.util

from jaxtag.core import errors

GCS_MODULES = {"gcsfs": "gcsfs", "google.cloud.storage": "google-cloud-storage"}   # module -> package
FIX = "pip install 'jaxtag[gcs]' (or: pip install gcsfs google-cloud-storage)"


def _missing(module: str) -> bool:
  try:
    return importlib.util.find_spec(module) is None
  except ModuleNotFoundError:   # a parent package (google.cloud) is absent
    return True


def require_gcs(**paths: str) -> None:
  """Raises a UserError naming the fix when any of ``paths`` (flag name -> value) is ``gs://`` and the
  packages it needs are not installed."""
  remote = [f"--{name}={value}" for name, value in paths.items() if str(value or "").startswith("gs://")]
  if not remote:
    return
  missing = [package for module, package in GCS_MODULES.items() if _missing(module)]
  if missing:
    raise errors.UserError(f"{remote[0]} needs {' and '.join(missing)}, which are not installed: {FIX}")
