"""Configs: every experiment builds, arguments compose, mistakes fail at start naming the valid choices."""
import importlib
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


def test_misspelt_override_fails_at_start(tmp_path):
  proc = subprocess.run([sys.executable, "-m", "jaxtag.main", "--config=configs/smoke.py", f"--workdir={tmp_path}",
                         "--config.train.learning_rat=0.1"], cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert proc.returncode != 0 and "learning_rat" in proc.stderr
  assert not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize("override,needle", [("--config.model.name=resnet", "valid: 'waveform', 'spectrogram'"),
                                             ("--config.data.dataset=gtzan", "valid: 'generated'"),
                                             ("--config.train.loss=hinge", "valid: 'bce', 'mse'")])
def test_bad_choices_fail_before_any_work(tmp_path, override, needle):
  proc = subprocess.run([sys.executable, "-m", "jaxtag.main", "--config=configs/smoke.py", f"--workdir={tmp_path}",
                         override], cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert proc.returncode != 0 and needle in proc.stderr, proc.stderr[-2000:]
  assert not (tmp_path / "checkpoints").exists()


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
