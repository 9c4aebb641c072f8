"""Every choice a config offers, declared once, and the one check of a config against them.

Modules that implement a choice look it up by these names (``step`` by ``LOSSES``, the data layer by
``DATASETS`` ...), and ``check_fields`` runs once at start (``train``), before any data is generated or read, so a misspelt
value fails in one line that lists the valid ones. Model names come from the model registry, their one home.
A leaf module: it imports nothing of jaxtag.
"""
from __future__ import annotations

DATASETS = ("generated", "rendered", "testbed", "mtt", "msd", "manifest")
SPLITS = ("train", "valid", "test")
MTT_SPLITS = ("pons", "clean")
SHORT_POLICIES = ("pad", "skip")            # songs shorter than one chunk
AUDIO_FORMATS = ("flac", "mp3", "wav")      # of generated corpora
DTYPES = ("float32", "bfloat16")            # compute dtype; parameters stay float32
LOSSES = ("bce", "mse")                     # mse: graded targets, the paper's private data
BEST_METRICS = ("loss", "roc_auc", "pr_auc")   # what best/ is chosen by; loss is lower-is-better
TRAINABLE = ("all", "top", "head")          # which parameters a (fine-tuning) run trains
INPUT_PIPELINES = ("chunks", "musicnn_patches")   # preprocessing contracts (jaxtag.models.contract): imported musicnn

POSITIVE_THRESHOLD = 0.5   # a graded target >= this counts as a positive (binary metrics, prevalence, baselines)

# config key -> its choices
FIELDS = {
    "data.dataset": DATASETS,
    "data.short_policy": SHORT_POLICIES,
    "data.input_pipeline": INPUT_PIPELINES,
    "data.mtt_split": MTT_SPLITS,
    "data.generated_format": AUDIO_FORMATS,
    "model.dtype": DTYPES,
    "train.loss": LOSSES,
    "train.best_metric": BEST_METRICS,
    "eval.split": SPLITS,
    "train.trainable": TRAINABLE,
}


class ConfigError(ValueError):
  """A config or data mistake a user can fix: reported in one line, without a traceback."""


def _get(config, dotted: str):
  node = config
  for part in dotted.split("."):
    if part not in node:
      return None
    node = node[part]
  return node


def check(key: str, value, valid) -> None:
  """Raises ``ConfigError`` naming ``key``, the bad value and the valid ones."""
  if value not in valid:
    raise ConfigError(f"unknown {key} {value!r}; valid: {', '.join(map(repr, valid))}")


def flatten(d: dict, prefix: str = "") -> dict:
  """A nested config dict as ``{"train.steps": 800, ...}`` (hparams tables, run-to-run comparisons)."""
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(flatten(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def check_fields(config) -> None:
  """Checks every declared choice that ``config`` sets (the model name is checked by the registry)."""
  for key, valid in FIELDS.items():
    value = _get(config, key)
    if value is not None:
      check(key, value, valid)
