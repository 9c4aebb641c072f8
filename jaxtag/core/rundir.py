"""A run directory's layout, in one place: every module that reads or writes a file of a run asks here.

  W/config.json      the run's full config              W/tags.json     the model's output tags, in order
  W/contract.json    the preprocessing contract (``jaxtag.models.contract``): what audio the model takes
  W/loader.json      loader settings pinned at the first start (``jaxtag.training.feed``)
  W/checkpoints/     Orbax steps (``jaxtag.training.checkpoint``); ``<step>.corrupt``: set aside, never deleted
  W/metrics.jsonl    every logged scalar             W/tensorboard/  the same as TensorBoard events
  W/summary.json     the end-of-run summary          W/report/       evaluation reports (``jaxtag.evaluation``)
  W/init.json        where a run started from (``init.workdir``)   W/profile/  jax.profiler traces

A workdir may be local or ``gs://`` (``etils.epath`` reaches both), so paths are ``epath.Path`` objects.
"""
from __future__ import annotations

import json

from jaxtag.core import errors

CONFIG = "config.json"
TAGS = "tags.json"
CONTRACT = "contract.json"
LOADER = "loader.json"
CHECKPOINTS = "checkpoints"
METRICS = "metrics.jsonl"
TENSORBOARD = "tensorboard"
SUMMARY = "summary.json"
REPORT = "report"
INIT = "init.json"
PROFILE = "profile"


def path(workdir, name: str):
  """``W/<name>`` (an ``epath.Path``) for one of the names above. epath is imported here, not at the top: the
  preprocessing contract (``jaxtag.models.contract``) runs in decode workers that import as little as they can."""
  from etils import epath
  return epath.Path(workdir) / name


def is_run(workdir) -> bool:
  return path(workdir, CONFIG).exists()


def require_run(workdir, what: str = "--workdir") -> None:
  """A user-given directory that must hold a run: one line naming it if it does not."""
  if not path(workdir, "").exists():
    raise errors.MissingInput(f"{what}={workdir} does not exist; give a run directory (written by jaxtag train "
                              "or import-musicnn)")
  for name in (CONFIG, TAGS):
    if not path(workdir, name).exists():
      raise errors.MissingInput(f"{what}={workdir} has no {name}: not a jaxtag run directory (written by "
                                "jaxtag train or import-musicnn)")


def read_config_and_tags(workdir, what: str = "--workdir") -> tuple[dict, list[str]]:
  """The run's config (as a plain dict) and its output tags."""
  require_run(workdir, what)
  return json.loads(path(workdir, CONFIG).read_text()), json.loads(path(workdir, TAGS).read_text())
