"""Configs: every experiment builds and validates against the one schema, arguments compose, and a mistake fails at
start in one line naming the key and what it accepts."""
import importlib
import os
import subprocess
import sys

import pytest

from conftest import ROOT

CONFIGS = ["smoke", "mtt", "msd", "private_100k", "private_500k", "private_1m"]


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("arg", [None, "waveform", "spectrogram,small", "smoke", "waveform,smoke,steps=7"])
def test_every_config_builds(name, arg):
  config = importlib.import_module(f"configs.{name}").get_config(arg)
  assert config.model.name in ("waveform", "spectrogram")
  if arg and "smoke" in arg:
    assert config.data.dataset == ("rendered" if name == "smoke" else "generated") and config.train.steps <= 800
  if arg and "steps=7" in arg:
    assert config.train.steps == 7


def test_paper_defaults():
  from configs import mtt, private_1m
  c = mtt.get_config()
  assert (c.model.name, c.model.spectrogram_k, c.data.chunk_seconds, c.train.learning_rate, c.train.l2) == \
      ("spectrogram", 8, 3.0, 1e-3, 1e-5)
  assert mtt.get_config("waveform").model.waveform_width == 4
  p = private_1m.get_config()
  assert (p.model.name, p.model.waveform_layers, p.data.chunk_seconds, p.train.loss, p.data.train_size) == \
      ("waveform", 9, 15.0, "mse", 1_000_000)


@pytest.mark.parametrize("arg,needle", [("wavform", "valid flags"), ("size=3", "valid keys"),
                                        ("waveform,spectrogram", "choose one")])
def test_bad_arguments_name_the_choices(arg, needle):
  from configs import mtt
  with pytest.raises(ValueError, match=needle):
    mtt.get_config(arg)


# One subprocess per entry point that loads a config (each start costs seconds): every mistake ends in one
# ``error:`` line that names the key and what it accepts, exit status 2, before any work.
MISTAKES = [
    ("jaxtag.main", "--config.train.steps=-5", "train.steps=-5 is out of range; valid: int >= 1"),
    ("jaxtag.main", "--config.train.learning_rat=0.1", "'train.learning_rat'; did you mean 'train.learning_rate'"),
    ("jaxtag.models.params", "--config.train.steps=abc", "train.steps='abc' has the wrong type; valid: int >= 1"),
    ("jaxtag.data.stats", "--config.model.logmel.fmax=9000", "model.logmel.fmin=0.0 / fmax=9000.0: need fmin < fmax"),
    ("jaxtag.analyze.study", "--set=train.stepz=3", "'train.stepz'; did you mean 'train.steps'"),
]


@pytest.mark.parametrize("module,override,needle", MISTAKES, ids=[m[1] for m in MISTAKES])
def test_a_config_mistake_ends_in_one_line_naming_the_key(tmp_path, module, override, needle):
  config = "configs/study.py:tiny" if module.endswith("study") else "configs/smoke.py"
  proc = subprocess.run([sys.executable, "-m", module, f"--config={config}", f"--workdir={tmp_path}", override]
                        if module.endswith(("main", "study")) else [sys.executable, "-m", module, f"--config={config}",
                                                                     override],
                        cwd=ROOT, capture_output=True, text=True, timeout=120)
  lines = proc.stderr.strip().splitlines()
  assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error:"), proc.stderr[-2000:]
  assert needle in lines[0], lines[0]
  assert not list(tmp_path.iterdir())   # nothing was written: no corpus, no run directory


@pytest.mark.parametrize("key,value,needle", [
    ("model.name", "resnet", "unknown model.name 'resnet'; valid: 'waveform', 'spectrogram'"),
    ("data.dataset", "gtzan", "unknown data.dataset 'gtzan'; valid: 'generated'"),
    ("train.loss", "hinge", "unknown train.loss 'hinge'; valid: 'bce', 'mse'"),
    ("model.dtype", "float16", "valid: 'float32', 'bfloat16'"),
    ("model.waveform_layers", 8, "unknown model.waveform_layers 8; valid: 7, 9"),
    ("model.dropout", 1.0, "model.dropout=1.0 is out of range; valid: float in [0, 1)"),
    ("train.global_batch_size", 0, "train.global_batch_size=0 is out of range; valid: int >= 1"),
    ("train.backbone_lr_scale", -0.5, "train.backbone_lr_scale=-0.5 is out of range; valid: float >= 0"),
    ("train.steps", None, "train.steps=None has the wrong type (NoneType); valid: int >= 1"),
    ("train.steps", True, "train.steps=True has the wrong type (bool)"),
    ("train.profile_steps", "5:5", "train.profile_steps='5:5': not two step numbers A < B; valid: 'A:B'"),
    ("init.checkpoint", "newest", "init.checkpoint='newest': not a checkpoint of init.workdir; valid: 'best' | "),
    ("data.dataset", "mtt", "data.dataset='mtt' needs --config.data.annotations=PATH"),
    ("data.input_pipeline", "musicnn_patches", "needs a log-mel model; model.name='waveform' takes raw audio"),
])
def test_schema_names_the_key_and_what_it_accepts(key, value, needle):
  from jaxtag.core import choices, config as config_lib
  c = importlib.import_module("configs.smoke").get_config("waveform")
  config_lib.set_value(c, key, value)
  with pytest.raises(choices.ConfigError) as err:
    config_lib.validate(c)
  assert needle in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_unknown_and_missing_keys_fail():
  from jaxtag.core import choices, config as config_lib
  c = config_lib.base_config()
  c.train.zqx = 5                          # a key no one declared
  with pytest.raises(choices.ConfigError, match="unknown config key 'train.zqx'; valid keys of train: "):
    config_lib.validate(c)
  c = config_lib.base_config()
  del c.eval["max_songs"]
  with pytest.raises(choices.ConfigError, match="the config has no key 'eval.max_songs'"):
    config_lib.validate(c)
  with pytest.raises(choices.ConfigError, match="unknown config key 'train.setps'; did you mean 'train.steps'"):
    config_lib.check_overrides(["--config.train.setps=5"])


def test_every_key_has_a_type_a_doc_and_a_valid_default():
  from jaxtag.core import choices, config as config_lib
  names = [k.name for k in config_lib.SCHEMA]
  assert len(names) == len(set(names))
  base = set(choices.flatten(config_lib.base_config().to_dict()))
  optional = {n for n in names if n.split(".")[0] in config_lib.OPTIONAL_SECTIONS}
  assert base == set(names) - optional and optional
  for key in config_lib.SCHEMA:
    assert key.type in (bool, int, float, str, tuple) and key.doc.strip() and "\n" not in key.doc, key.name
    assert key.type is not tuple or key.item_type in (bool, int, float, str) or \
        (key.item_type is object and key.check is not None), key.name   # mixed items: a check= says which
    assert key.problem(key.default) is None, key.name
    assert key.check is None or key.allowed, f"{key.name}: a check= needs allowed= (its words in the docs)"
  assert all(rule.__doc__ for rule in config_lib.RULES)


def test_model_choices_are_the_registry():
  from jaxtag.core import choices
  from jaxtag.models import registry
  assert registry.MODELS == choices.MODELS


# every config file in configs/ (those with get_config), with the paths its data set needs
PATHS = {"mtt": {"data.annotations": "a.csv", "data.split_lists": "lists"}, "msd": {"data.labels.train": "ids.txt:y.npy"},
         "manifest": {"data.manifest": "m.jsonl"}}
FILES = sorted(f[:-3] for f in os.listdir(os.path.join(ROOT, "configs"))
               if f.endswith(".py") and "def get_config" in open(os.path.join(ROOT, "configs", f)).read())


@pytest.mark.parametrize("name", FILES)
def test_every_config_file_validates(name):
  from jaxtag.core import config as config_lib
  won_types = importlib.import_module("configs.won").MODEL_TYPES
  args = {"study": [None, "waveform", "smoke", "tiny", "paper", "waveform,train_size=120,seed=1"],
          "finetune": [None, "waveform", "smoke", "head", "top"],
          "won": [None, "smoke", *won_types, *(f"{t},smoke" for t in won_types)]}.get(name, [None, "waveform", "smoke"])
  for arg in args:
    c = importlib.import_module(f"configs.{name}").get_config(arg)
    config_lib.validate(c, reads_data=False)        # the parameter table: no data paths needed
    if c.data.dataset in PATHS:
      with pytest.raises(ValueError, match="needs --config.data"):
        config_lib.validate(c)
    for key, value in PATHS.get(c.data.dataset, {}).items():
      config_lib.set_value(c, key, value)
    config_lib.validate(c)
  assert {"smoke", "mtt", "study", "finetune"} <= set(FILES)


def test_load_parses_overrides_as_the_keys_types():
  from jaxtag.core import choices, config as config_lib
  path = os.path.join(ROOT, "configs", "study.py")
  c = config_lib.load(f"{path}:tiny", {"train.steps": "3", "data.graded": "false", "study.seeds": "[2, 3]",
                                       "model.dropout": "0.25", "data.cache_dir": "/tmp/c"})
  assert (c.train.steps, c.data.graded, c.study.seeds, c.model.dropout, c.data.cache_dir) == \
      (3, False, (2, 3), 0.25, "/tmp/c")
  with pytest.raises(choices.ConfigError, match=r"train.steps='x' has the wrong type; valid: int >= 1"):
    config_lib.load(path, {"train.steps": "x"})
  with pytest.raises(choices.ConfigError, match=r"train.steps=0 is out of range"):
    config_lib.load(path, {"train.steps": "0"})
  with pytest.raises(choices.ConfigError, match="cannot load the config file 'configs/nope.py'"):
    config_lib.load("configs/nope.py")


def test_docs_config_md_is_the_schema():
  """docs/config.md is generated (python -m jaxtag.core.config > docs/config.md): it never drifts."""
  from jaxtag.core import config as config_lib
  with open(os.path.join(ROOT, "docs", "config.md")) as f:
    assert f.read() == config_lib.markdown(), "regenerate: python -m jaxtag.core.config > docs/config.md"


def test_study_pair_shares_the_back_end_within_2x_parameters():
  """configs/study.py's CPU pair: both front-ends feed the same back-end size, and the parameter counts of the
  two models (64 output tags, as the rendered corpus) are within 2x (the issue's fairness condition)."""
  from flax import nnx
  from jaxtag.models import layers, registry
  study = importlib.import_module("configs.study")
  counts = {}
  for fe in ("waveform", "spectrogram"):
    c = study.get_config(fe)
    assert (c.model.backend_filters, c.model.backend_units) == (32, 64)
    counts[fe] = layers.count_params(registry.build_model(c.model, 64, sample_rate=c.data.sample_rate, rngs=nnx.Rngs(0)))
  assert counts == {"waveform": 114_528, "spectrogram": 100_064}
  assert max(counts.values()) / min(counts.values()) < 2
