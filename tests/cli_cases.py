"""Runs many jaxtag command lines in one interpreter, as ``python -m`` would run each: the import of jax and
of the tools is paid once instead of once per command (``tests/test_cli_errors.py``).

  python tests/cli_cases.py ROOT CASES.json   ->  one JSON object per case on stdout's last line

``ROOT`` receives the inputs the cases name (``make_inputs``); each case is ``{"id": ..., "argv": [...]}``
where ``argv`` is what follows ``python -m``: ``["jaxtag", "evaluate", ...]`` (the dispatcher) or
``["jaxtag.evaluate", ...]`` (a module form). Between cases every flag a tool defined is removed and absl's
once-per-process parse guard is reset, so each case parses its own command line from scratch.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import runpy
import sys
import traceback
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_inputs(root: str) -> None:
  """A run directory (config.json, tags.json, contract.json: everything but trained weights), its saved test
  predictions, and the wrong kinds of input a user hands over: a text file, a binary list, an empty folder."""
  import numpy as np
  sys.path.insert(0, ROOT)
  from configs import smoke
  from jaxtag.data import generate
  from jaxtag.evaluation import report
  from jaxtag.training import checkpoint
  run = os.path.join(root, "run")
  tags = list(generate.TAGS)
  checkpoint.write_run_info(run, smoke.get_config(), tags)
  os.makedirs(os.path.join(run, "checkpoints"))
  rng = np.random.default_rng(0)
  y = (rng.random((8, len(tags))) > 0.5).astype(np.float32)
  report.save_predictions(report.predictions_path(run, "test"), report.Predictions(
      song_ids=np.array([f"s{i}" for i in range(8)]), scores=rng.random((8, len(tags))).astype(np.float32),
      targets=y, tags=np.array(tags), dataset="generated", split="test", train_pos=y.sum(0), train_cooc=y.T @ y,
      n_train=8))
  with open(report.eval_json_path(run, "test"), "w") as f:
    json.dump({"model": "spectrogram", "n_train": 8, "roc_auc": 0.5, "pr_auc": 0.5, "rmse": 0.5}, f)
  with open(os.path.join(root, "notes.txt"), "w") as f:
    f.write("not audio, not a run\n")
  with open(os.path.join(root, "binary.lst"), "wb") as f:
    f.write(bytes(range(128, 256)) * 4)
  with open(os.path.join(root, "other.npz"), "wb") as f:
    np.savez(f, w=np.zeros(2))
  os.makedirs(os.path.join(root, "empty"))


def _reset(baseline: set[str]) -> None:
  from absl import app, flags
  for name in set(flags.FLAGS) - baseline:
    delattr(flags.FLAGS, name)
  flags.FLAGS.unparse_flags()
  app._register_and_parse_flags_with_usage.done = False   # noqa: SLF001  (absl parses once per process)


def run_case(argv: list[str], baseline: set[str]) -> dict:
  """``python -m argv...`` in this process: exit status and everything written to stderr (an exception
  that escapes is printed there as Python would, with its traceback)."""
  err, old_argv = io.StringIO(), sys.argv
  try:
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
      try:
        if argv[0] == "jaxtag":
          from jaxtag import __main__ as dispatcher
          sys.argv = ["jaxtag", *argv[1:]]
          dispatcher.main(argv[1:])
        else:
          sys.argv = [argv[0], *argv[1:]]
          runpy.run_module(argv[0], run_name="__main__", alter_sys=True)
        code = 0
      except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
      except BaseException:   # noqa: BLE001  what python -m would print: the traceback, status 1
        traceback.print_exc()
        code = 1
  finally:
    sys.argv = old_argv
    _reset(baseline)
  return {"code": code, "stderr": err.getvalue()}


def main() -> None:
  root, cases_path = sys.argv[1], sys.argv[2]
  with open(cases_path) as f:
    cases = json.load(f)
  make_inputs(root)
  # make_inputs imported some tool modules as libraries; running them again as __main__ makes runpy warn,
  # which a fresh ``python -m`` process would not
  warnings.filterwarnings("ignore", r".*found in sys.modules after import of package", RuntimeWarning)
  from absl import app, flags
  app.define_help_flags()
  baseline = set(flags.FLAGS)
  results = {c["id"]: run_case(c["argv"], baseline) for c in cases}
  print(json.dumps(results))


if __name__ == "__main__":
  main()
