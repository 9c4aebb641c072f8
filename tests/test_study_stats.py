"""The study's statistics on fake finished cells (no training): the pool-size rule, per-size and per-family
differences with artist-bootstrap intervals, the crossover rule, under-trained cells and the outputs."""
import json
import os

import numpy as np
import pytest

from jaxtag.analyze import study, study_stats
from jaxtag.core.errors import UserError
from jaxtag.evaluation import report


def test_the_largest_size_is_the_whole_pool():
  assert study.resolve_sizes((170, 480, "all"), 1431) == [170, 480, 1431]
  assert study.resolve_sizes((120, 0), 477) == [120, 477]
  assert study.resolve_sizes((477, "all"), 477) == [477]            # the pool named twice is one size
  with pytest.raises(UserError, match="outside the train pool of 2395 songs; .*'all'"):
    study.resolve_sizes((600, 1200, 2400), 2395)
  with pytest.raises(UserError, match="not a number of songs"):
    study.resolve_sizes(("lots",), 10)


def test_a_size_above_the_pool_is_refused_before_any_cell_trains(tmp_path, monkeypatch):
  monkeypatch.setattr(study, "study_data", lambda *a: {"pool": 5, "artist_of": {}, "families": {}, "kinds": {},
                                                       "title": "t"})
  monkeypatch.setattr(study, "run_cell", lambda *a, **k: pytest.fail("a cell ran before the sizes were checked"))
  with pytest.raises(UserError, match="train pool of 5 songs"):
    study.run(os.path.join(os.path.dirname(__file__), "..", "configs", "study.py"), str(tmp_path), "tiny")


def _fake_cells(tmp_path, n_songs=240, n_artists=60):
  """Two front-ends x 3 sizes x 2 seeds on one test set: on the 'inv' tag the waveform is behind at 100 songs,
  level at 300 and ahead at 900; elsewhere the two are alike."""
  rng = np.random.default_rng(0)
  tags = np.array(["vis1", "vis2", "inv", "rare"])
  y = (rng.random((n_songs, 4)) < [0.4, 0.3, 0.5, 0.05]).astype(np.float32)
  ids = np.array([f"s{i}" for i in range(n_songs)])
  artist_of = {f"s{i}": f"a{i % n_artists}" for i in range(n_songs)}
  cells = []
  for n, gain in ((100, -0.7), (300, 0.0), (900, 0.8)):
    for f in ("waveform", "spectrogram"):
      for seed in (0, 1):
        strength = np.array([1.5, 1.5, 0.9 if f == "spectrogram" else 0.9 + gain, 1.0])
        scores = y * strength + rng.normal(0, 1, y.shape)
        d = str(tmp_path / f"{f}-n{n}-s{seed}")
        report.save_predictions(report.predictions_path(d, "test"), report.Predictions(
            song_ids=ids, scores=scores.astype(np.float32), targets=y, tags=tags, dataset="fake", split="test",
            step=10, n_train=n))
        with open(os.path.join(d, "metrics.jsonl"), "w") as fh:
          for step in (50, 100, 150):
            fh.write(json.dumps({"step": step, "val/roc_auc": 0.6 + step / 1000}) + "\n")
        cells.append({"name": f"{f}-n{n}-s{seed}", "frontend": f, "train_size": n, "n_train": n, "seed": seed,
                      "dir": d, "best_step": 150 if n == 900 else 60, "cap": 160})
  return cells, artist_of


def test_stats_on_fake_cells(tmp_path):
  cells, artist_of = _fake_cells(tmp_path)
  families = {"vis1": "style", "vis2": "voice", "inv": "phase", "rare": "style"}
  kinds = {"style": "visible", "voice": "visible", "phase": "invisible"}
  res = study_stats.analyse(cells, artist_of, families, kinds, min_positives=30, n_boot=200)
  assert res["test_songs"] == 240 and res["test_artists"] == 60
  assert set(res["scored_tags"]) == {"vis1", "vis2", "inv"} and "rare" in res["unscored_tags"]
  assert set(res["families"]) == {"all", "style", "voice", "phase", "kind:visible", "kind:invisible"}
  by_size = {e["n_train"]: e["sets"] for e in res["per_size"]}
  for n, s in by_size.items():
    lo, hi = s["phase"]["diff_ci"]
    assert lo <= s["phase"]["diff"] <= hi
    assert s["kind:invisible"]["diff"] == s["phase"]["diff"]
  assert by_size[900]["phase"]["diff_ci"][0] > 0                 # waveform clearly ahead on the invisible tag
  assert by_size[100]["style"]["diff_ci"][0] < 0 < by_size[100]["style"]["diff_ci"][1]   # same strength: no gap
  assert by_size[100]["phase"]["diff_ci"][1] < 0                # and clearly behind at the smallest size
  assert by_size[300]["phase"]["diff_ci"][0] < 0 < by_size[300]["phase"]["diff_ci"][1]
  assert res["crossover"]["phase"] == {"between": [100, 900], "from": "spectrogram", "to": "waveform"}
  assert res["crossover"]["style"] is None
  assert res["learning_curves"]["waveform/phase"]["b_per_decade"] > 0.05
  under = {(c["frontend"], c["n_train"], c["seed"]): c["under_trained"] for c in res["cells"]}
  assert all(under[k] == (k[1] == 900) for k in under)            # best step 150 of a 160-step cap
  assert all(c["test_songs"] == 240 and c["cap"] == 160 for c in res["cells"])
  md = study_stats.write(str(tmp_path), res, "fake")
  assert "| Waveform | 900 | " in md and "under-trained" in md and "inv (" in md
  assert os.path.getsize(tmp_path / "study.png") > 1000
  json.load(open(tmp_path / "study.json"))
  study_stats.plot_curves(str(tmp_path / "curves.png"), cells)
  assert os.path.getsize(tmp_path / "curves.png") > 1000


def test_under_trained_rule():
  assert study_stats.under_trained(450, 500) and not study_stats.under_trained(400, 500)
  assert not study_stats.under_trained(10, 0)


def test_study_configs_select_the_testbed():
  from jaxtag.core import config as config_lib
  path = os.path.join(os.path.dirname(__file__), "..", "configs", "study.py")
  for arg, n, cap in (("testbed", 2400, 500), ("waveform,testbed,seed=2", 2400, 500), ("paper", 3000, 1000),
                      ("paper,dry", 40, 2)):
    c = config_lib.load(f"{path}:{arg}")       # validated against the config schema
    assert c.data.dataset == "testbed" and c.data.generated_n == n and c.train.steps == cap
    assert c.study.train_sizes[-1] == "all" and len(c.study.seeds) >= (1 if "dry" in arg else 3)
  assert config_lib.load(f"{path}:testbed").train.early_stopping_patience > 0
