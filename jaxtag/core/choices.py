"""Every choice a config offers, declared once, and ``ConfigError``, the one class of a user's mistake.

Modules that implement a choice look it up by these names (``step`` by ``LOSSES``, the data layer by
``DATASETS`` ...); the config schema (``jaxtag.core.config.SCHEMA``) names them as the allowed values of its keys
and checks every config against them at start. ``MODELS`` are the model registry's names
(``jaxtag.models.registry``; a test keeps the two equal). A leaf module: it imports nothing of jaxtag.
"""
from __future__ import annotations

DATASETS = ("generated", "rendered", "testbed", "mtt", "msd", "manifest")
SPLITS = ("train", "valid", "test")
MTT_SPLITS = ("pons", "clean")
SHORT_POLICIES = ("pad", "skip")            # songs shorter than one chunk
AUDIO_FORMATS = ("flac", "mp3", "wav")      # of generated corpora
DTYPES = ("float32", "bfloat16")            # compute dtype; parameters stay float32
KERNELS = ("auto", "fused", "plain")        # model.kernels: CPU rewrites or plain forms (models/layers.py)
LOSSES = ("bce", "mse")                     # mse: graded targets, the paper's private data
BEST_METRICS = ("loss", "roc_auc", "pr_auc")   # what best/ is chosen by; loss is lower-is-better
TRAINABLE = ("all", "top", "head")          # which parameters a (fine-tuning) run trains
LOGMEL_STYLES = ("librosa", "torchaudio")   # log-mel semantics (jaxtag/models/logmel.py): torchaudio = Won et al.'s
MODELS = ("waveform", "spectrogram", "musicnn", "musicnn_vgg", "dieleman", "samplecnn", "samplecnn_multi",
          "timbre_cnn", "vgg", "crnn", "short_chunk_cnn", "short_chunk_resnet", "harmonic_cnn", "samplecnn_se",
          "cnnsa")                           # the model registry's names (jaxtag/models/registry.py)
INPUT_PIPELINES = ("chunks", "musicnn_patches")   # preprocessing contracts (jaxtag.models.contract): imported musicnn
RECIPES = ("default", "won")                # optimisation recipes (jaxtag.training.recipe)
EVAL_PROTOCOLS = ("chunks", "crops16")      # song scores from all chunks | Won et al.'s 16 evenly spaced crops

CHECKPOINTS = ("best", "latest")           # which checkpoint of a run a tool loads, besides a step number

POSITIVE_THRESHOLD = 0.5   # a graded target >= this counts as a positive (binary metrics, prevalence, baselines)


class ConfigError(ValueError):
  """A config or data mistake a user can fix: reported in one line, without a traceback."""


def check(key: str, value, valid) -> None:
  """Raises ``ConfigError`` naming ``key``, the bad value and the valid ones."""
  if value not in valid:
    raise ConfigError(f"unknown {key} {value!r}; valid: {', '.join(map(repr, valid))}")


def checkpoint(value) -> str | int:
  """``best`` | ``latest`` | a step number (``"1200"`` -> ``1200``): the one reading of every ``--checkpoint``."""
  if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
    return value
  text = str(value).strip()
  if text in CHECKPOINTS:
    return text
  if text.isdigit():
    return int(text)
  raise ConfigError(f"unknown checkpoint {value!r}; give best, latest or a step number (e.g. 1200)")


def flatten(d: dict, prefix: str = "") -> dict:
  """A nested config dict as ``{"train.steps": 800, ...}`` (hparams tables, run-to-run comparisons)."""
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(flatten(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out
