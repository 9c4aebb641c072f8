"""What a person running ``jaxtag.main`` sees: jaxtag's own lines only, a clean exit, a run that resumes past a
truncated newest checkpoint, and one line (exit status 2, no traceback) for each kind of user mistake."""
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT
from test_train import main_cmd, run_main
from test_checkpoint_policy import truncate_data_files

JAXTAG = os.path.join(ROOT, "jaxtag")
LOG_LINE = re.compile(r"^[IWEF]\d{4} [\d:.]+ +\d+ ([\w.]+):\d+\] ")


def own_modules() -> set[str]:
  return {f for _, _, files in os.walk(JAXTAG) for f in files if f.endswith(".py")}


def assert_readable_log(stderr: str) -> None:
  """INFO lines come from jaxtag modules only; no shutdown noise."""
  own = own_modules()
  info_files = [m.group(1) for line in stderr.splitlines() if line.startswith("I") and (m := LOG_LINE.match(line))]
  assert info_files, stderr[-2000:]
  foreign = sorted(set(info_files) - own)
  assert not foreign, f"INFO lines of other libraries reach the console: {foreign}"
  for noise in ("leaked shared_memory", "Traceback", "Exception ignored", "orbax"):
    assert noise not in stderr, f"{noise!r} in the console output:\n{stderr[-3000:]}"


def test_run_logs_are_readable_and_resume_skips_a_truncated_checkpoint(tmp_path, corpus_cache):
  """README command 1's config (smoke, shrunk); 2 loader workers, so the shared-memory path is exercised."""
  workdir = tmp_path / "run"
  args = ["--config.train.checkpoint_every=2", "--config.train.eval_every=100", "--config.data.num_workers=2"]
  first = run_main(workdir, corpus_cache, "--config.train.steps=4", *args)
  assert_readable_log(first.stderr)
  assert re.search(r"checkpoint step 4\b.*checkpoints/4", first.stderr)
  assert truncate_data_files(workdir / "checkpoints" / "4") > 0
  second = run_main(workdir, corpus_cache, "--config.train.steps=6", *args)
  warnings = [line for line in second.stderr.splitlines() if "cannot be restored" in line]
  assert len(warnings) == 1 and "checkpoint step 4" in warnings[0], second.stderr[-3000:]
  assert "resumed from" in second.stderr and "checkpoints/2" in second.stderr
  assert (workdir / "checkpoints" / "4.corrupt").is_dir()
  steps = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
  assert steps == [2, 4, 6]   # step 4 trained again after the fallback
  assert '"step": 6' in (workdir / "summary.json").read_text()


def one_line_failure(*args, cwd=ROOT) -> str:
  proc = subprocess.run([sys.executable, "-m", "jaxtag.main", *args], cwd=cwd, capture_output=True, text=True,
                        timeout=600)
  lines = [line for line in proc.stderr.splitlines() if line.strip() and not LOG_LINE.match(line)]
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr[-3000:]
  return lines[0]


@pytest.mark.parametrize("override, expected", [
    ("--config.train.stepz=3", r"unknown config key 'train.stepz'; did you mean 'train.steps'"),
    ("--config.model.name=nope", r"unknown model.name 'nope'; valid: 'waveform'"),
    ("--config.train.loss=hinge", r"unknown train.loss 'hinge'"),
])
def test_config_mistakes_end_in_one_line(tmp_path, override, expected):
  line = one_line_failure(f"--config={ROOT}/configs/smoke.py", f"--workdir={tmp_path}", override)
  assert re.search(expected, line), line


def test_missing_config_file_and_manifest_end_in_one_line(tmp_path):
  line = one_line_failure(f"--config={tmp_path}/nope.py", f"--workdir={tmp_path}")
  assert "cannot load the config file" in line and "nope.py" in line
  line = one_line_failure(f"--config={ROOT}/configs/smoke.py", f"--workdir={tmp_path}",
                          "--config.data.dataset=manifest", f"--config.data.manifest={tmp_path}/songs.jsonl")
  assert "songs.jsonl" in line and "not found" in line


def test_train_size_larger_than_pool_ends_in_one_line(tmp_path, corpus_cache):
  cmd = main_cmd(tmp_path / "w", corpus_cache, "--config.data.train_size=100000")
  line = one_line_failure(*cmd[3:])
  assert "data.train_size=100000 exceeds the train pool" in line


def test_traceback_flag_shows_the_trace(tmp_path):
  proc = subprocess.run([sys.executable, "-m", "jaxtag.main", f"--config={ROOT}/configs/smoke.py",
                         f"--workdir={tmp_path}", "--config.model.name=nope", "--traceback"],
                        cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert proc.returncode != 0 and "Traceback (most recent call last)" in proc.stderr
  assert "unknown model.name 'nope'" in proc.stderr


def test_log_filter_keeps_own_info_and_every_warning_without_foreign_tracebacks():
  import logging
  from jaxtag.core import logs

  def record(path, level, msg="m", exc=None):
    return logging.LogRecord("absl", level, path, 1, msg, None, exc)
  f = logs.OwnInfoOnly()
  assert f.filter(record(os.path.join(JAXTAG, "train.py"), logging.INFO))
  assert not f.filter(record("/site-packages/orbax/checkpoint/checkpoint_manager.py", logging.INFO))
  try:
    raise OSError("disk full")
  except OSError:
    foreign = record("/site-packages/orbax/x.py", logging.ERROR, "save failed", sys.exc_info())
  assert f.filter(foreign) and foreign.exc_info is None   # the line stays, its traceback goes
  assert not f.filter(record("/x/orbax/checkpoint_manager.py", logging.WARNING,
                             "Requested `tracked_metric`; did not provide metrics."))
