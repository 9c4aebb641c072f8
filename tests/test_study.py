"""The study runner's bookkeeping on a tiny config (one cell, to stay cheap): a half-finished cell resumes where
it stopped, a finished cell is skipped, and the table (mean +- spread), the figure and the scaling report are
written."""
import json
import os

from conftest import ROOT

CONFIG = os.path.join(ROOT, "configs", "study.py")


def _logged_steps(workdir):
  rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  return [r["step"] for r in rows if "loss" in r]


def test_study_resumes_a_half_finished_cell_and_skips_done_cells(tmp_path):
  from jaxtag.analyze import study
  from jaxtag.training import train
  overrides = {"data.cache_dir": str(tmp_path / "cache")}
  cell = {"frontend": "spectrogram", "train_size": 8, "seed": 0, "name": "spectrogram-n8-s0"}
  half = os.path.join(tmp_path, "study", "cells", cell["name"])
  config = study.cell_config(CONFIG, study.cell_arg(cell, "tiny,steps=2"), overrides)
  train.train_and_evaluate(config, half)          # stopped after 2 of 4 steps: no study_cell.json yet
  assert not os.path.exists(os.path.join(half, study.CELL_DONE))

  res = study.run(CONFIG, str(tmp_path / "study"), "tiny", overrides)
  assert _logged_steps(half) == [2, 4]              # resumed at step 2, not restarted
  assert [(r["train_size"], r["n_train"]) for r in res["rows"]] == [(8, 8)]
  done = os.path.getmtime(os.path.join(half, study.CELL_DONE))
  md = open(tmp_path / "study" / "study.md").read()
  assert "| Spectrogram | 8 | " in md and "[" in md and "Scored tags (test positives)" in md
  (cell_row,) = json.load(open(tmp_path / "study" / "study.json"))["cells"]
  assert cell_row["best_step"] in (2, 4) and cell_row["cap"] == 4 and cell_row["test_songs"] == 4
  assert os.path.getsize(tmp_path / "study" / "study.png") > 1000
  assert os.path.exists(tmp_path / "study" / "scaling" / "scaling.md")

  again = study.run(CONFIG, str(tmp_path / "study"), "tiny", overrides)   # everything done: nothing retrains
  assert again["rows"] == res["rows"]
  assert os.path.getsize(tmp_path / "study" / "curves.png") > 1000
  assert done == os.path.getmtime(os.path.join(half, study.CELL_DONE)) and _logged_steps(half) == [2, 4]


def test_aggregate_gives_mean_and_sample_spread():
  from jaxtag.analyze import study
  rows = [{"model": "waveform", "n_train": 10, "roc_auc": a, "pr_auc": 0.5, "rmse": 0.3} for a in (0.6, 0.8)]
  (agg,) = study.aggregate(rows)
  assert abs(agg["roc_auc"] - 0.7) < 1e-9 and abs(agg["roc_auc_std"] - 0.1414213) < 1e-6 and agg["seeds"] == 2


def test_a_cell_stopped_by_a_signal_is_not_marked_done(tmp_path, monkeypatch):
  """SIGTERM makes the trainer save and return normally; the study must not evaluate that cell and mark it
  done (a rerun resumes it), and it stops instead of going on to the next cell."""
  import pytest
  from jaxtag.analyze import study
  from jaxtag.training import train
  cell = study.cells(study.cell_config(CONFIG, "tiny", None).study)[0]
  config = study.cell_config(CONFIG, study.cell_arg(cell, "tiny"), None)
  monkeypatch.setattr(train, "train_and_evaluate", lambda config, workdir: {"step": 2, "stopped_by": "SIGTERM"})
  with pytest.raises(study.Interrupted, match="rerun the same command"):
    study.run_cell(config, cell, str(tmp_path / "cell"))
  assert not os.path.exists(tmp_path / "cell" / study.CELL_DONE)
