"""Learning-rate warm-up at a large global batch: the smoke model at batch 256 with and without warm-up.

``python -m benchmarks.warmup [--batch=256 --steps=300 --warmup_steps=60 --out=benchmarks/results/warmup/
--runs_dir=runs/warmup]``

Both runs train ``configs/smoke.py`` (the spectrogram model on the rendered corpus) at ``--batch`` with the
learning rate of the square-root rule (``config.scaled_lr``) taken from the smoke recipe's own rate at batch 32
(4e-3 -> 1.13e-2 at 256; ``--reference_lr`` overrides the reference), one with ``train.warmup_steps =
--warmup_steps`` (linear, ``training/schedule.py``) and one without; everything else (seed, data order,
evaluation every ``--eval_every`` steps) is the same. ``config.warmup_for`` would give 2,000 steps at batch 256,
sized for runs of ~125k steps; a CPU run of a few hundred steps takes the same kind of fraction as
``--warmup_steps`` instead (default: a fifth of the run).

Writes ``OUT/warmup.jsonl`` (one row per finished run: test ROC-AUC / PR-AUC of the best-validation-loss and of
the last checkpoint, best step, wall time), ``OUT/warmup.json`` (the curves), ``OUT/warmup.md`` and
``OUT/warmup.png`` (training loss and validation loss / ROC-AUC against step, both runs in one figure).

Resumable: rerun the same command. A finished run (``summary.json``) is not trained again and a half-trained one
resumes from its newest checkpoint (jaxtag's own resume); a run already in ``warmup.jsonl`` is not evaluated
again. Each run's console output goes to ``RUNS_DIR/<name>.log``. ``--dry_run`` trains a few steps of each into
a temporary folder (a check that the script still works, not a measurement).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

from absl import app, flags

flags.DEFINE_integer("batch", 256, "Global batch size.", lower_bound=2)
flags.DEFINE_integer("steps", 300, "Training steps of each run.", lower_bound=1)
flags.DEFINE_integer("warmup_steps", -1, "Warm-up steps of the warm-up run (-1: steps // 5).", lower_bound=-1)
flags.DEFINE_integer("eval_every", 20, "Validation every this many steps.", lower_bound=1)
flags.DEFINE_integer("log_every", 5, "Training loss logged every this many steps.", lower_bound=1)
flags.DEFINE_float("reference_lr", 0.0, "Learning rate at batch 32 that the square-root rule scales "
                   "(0: the smoke recipe's own).", lower_bound=0.0)
flags.DEFINE_string("config", "configs/smoke.py", "Config the runs start from.")
flags.DEFINE_string("runs_dir", "runs/warmup", "Run directories go here.")
flags.DEFINE_string("out", "benchmarks/results/warmup", "Result files go here.")
flags.DEFINE_bool("dry_run", False, "Train 4 steps a run at batch 8 in a temporary folder (script check).")
FLAGS = flags.FLAGS


def plan() -> dict:
  """``{run name: config overrides}`` for the two runs, and the common settings."""
  import importlib.util

  from jaxtag.core import config as config_lib
  spec = importlib.util.spec_from_file_location("cfg", FLAGS.config.split(":")[0])
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  base = mod.get_config(FLAGS.config.split(":", 1)[1] if ":" in FLAGS.config else None)
  ref_lr = FLAGS.reference_lr or float(base.train.learning_rate)
  lr = config_lib.scaled_lr(FLAGS.batch, config_lib.REFERENCE_BATCH, ref_lr)
  warmup = FLAGS.warmup_steps if FLAGS.warmup_steps >= 0 else max(1, FLAGS.steps // 5)
  common = {"train.global_batch_size": FLAGS.batch, "train.learning_rate": lr, "train.steps": FLAGS.steps,
            "train.eval_every": FLAGS.eval_every, "train.log_every": FLAGS.log_every,
            "train.checkpoint_every": max(FLAGS.eval_every, FLAGS.steps // 6)}
  return {"settings": {"config": FLAGS.config, "batch": FLAGS.batch, "reference_batch": config_lib.REFERENCE_BATCH,
                       "reference_lr": ref_lr, "learning_rate": lr, "steps": FLAGS.steps,
                       "warmup_steps": warmup, "warmup_for_rule": config_lib.warmup_for(FLAGS.batch),
                       "eval_every": FLAGS.eval_every},
          "runs": {"no_warmup": {**common, "train.warmup_steps": 0},
                   f"warmup_{warmup}": {**common, "train.warmup_steps": warmup}}}


def train(name: str, overrides: dict, runs_dir: str, attempt: int = 0) -> str:
  workdir = os.path.join(runs_dir, name)
  if finished(workdir):
    print(f"{name}: trained already", flush=True)
    return workdir
  cmd = [sys.executable, "-m", "jaxtag.main", f"--config={FLAGS.config}", f"--workdir={workdir}"]
  cmd += [f"--config.{k}={v}" for k, v in overrides.items()]
  log = os.path.join(runs_dir, f"{name}.log")
  print(f"{name}: training ({' '.join(cmd[3:])}), log {log}", flush=True)
  t0 = time.time()
  with open(log, "a") as f:
    proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)
    while proc.poll() is None:
      time.sleep(30)
      step = last_step(workdir)
      if step:
        rate = step / (time.time() - t0)   # includes a resumed run's earlier steps: a rough ETA
        print(f"  {name}: step {step}/{overrides['train.steps']}, {rate:.2f} steps/s, "
              f"ETA {(overrides['train.steps'] - step) / max(rate, 1e-9):.0f} s", flush=True)
  if proc.returncode:
    if attempt < 2:   # e.g. a loader worker killed for memory on the shared machine: resume from the checkpoint
      print(f"{name}: training failed (exit {proc.returncode}); resuming (see {log})", flush=True)
      return train(name, overrides, runs_dir, attempt + 1)
    raise SystemExit(f"{name}: training failed (exit {proc.returncode}); see {log}")
  print(f"{name}: trained in {time.time() - t0:.0f} s", flush=True)
  return workdir


def finished(workdir: str) -> bool:
  """Whether the run reached its last step (a stopped run writes ``summary.json`` too, with the signal)."""
  path = os.path.join(workdir, "summary.json")
  if not os.path.exists(path):
    return False
  with open(path) as f:
    return json.load(f).get("stopped_by") in (None, "early_stopping")


def last_step(workdir: str) -> int:
  rows = read_metrics(workdir)
  return max((r["step"] for r in rows), default=0)


def read_metrics(workdir: str) -> list[dict]:
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return []
  rows = []
  with open(path) as f:
    for line in f:
      try:
        rows.append(json.loads(line))
      except json.JSONDecodeError:   # a line being written
        pass
  return rows


def evaluate(workdir: str, which: str) -> dict:
  cmd = [sys.executable, "-m", "jaxtag.evaluate", f"--workdir={workdir}", f"--checkpoint={which}", "--json"]
  out = subprocess.run(cmd, capture_output=True, text=True)
  if out.returncode:
    raise SystemExit(f"evaluate {workdir} ({which}) failed:\n{out.stderr[-2000:]}")
  return json.loads(out.stdout.strip().splitlines()[-1])


def curves(workdir: str) -> dict:
  rows = read_metrics(workdir)
  train = [(r["step"], r["loss"], r.get("lr")) for r in rows if "loss" in r and "val/loss" not in r]
  val = [(r["step"], r["val/loss"], r.get("val/roc_auc"), r.get("val/pr_auc")) for r in rows if "val/loss" in r]
  return {"train": {"step": [t[0] for t in train], "loss": [t[1] for t in train], "lr": [t[2] for t in train]},
          "val": {"step": [v[0] for v in val], "loss": [v[1] for v in val], "roc_auc": [v[2] for v in val],
                  "pr_auc": [v[3] for v in val]}}


def plot(path: str, data: dict, settings: dict) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, 4, figsize=(17, 3.8))
  for k, (name, d) in enumerate(data.items()):
    c = f"C{k}"
    axes[0].plot(d["train"]["step"], d["train"]["loss"], color=c, label=name)
    axes[1].plot(d["train"]["step"], d["train"]["lr"], color=c, label=name)
    axes[2].plot(d["val"]["step"], d["val"]["loss"], "o-", color=c, label=name)
    axes[3].plot(d["val"]["step"], [100 * v for v in d["val"]["roc_auc"]], "o-", color=c, label=name)
  for ax, title in zip(axes, ("training loss (BCE)", "learning rate", "validation loss", "validation ROC-AUC (%)")):
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
  axes[0].set_yscale("log")
  axes[0].legend()
  fig.suptitle(f"smoke model, global batch {settings['batch']}, lr {settings['learning_rate']:.3g} "
               f"(sqrt rule from {settings['reference_lr']:g} at {settings['reference_batch']})")
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)


def markdown(rows: list[dict], settings: dict) -> str:
  lines = [f"Smoke model (`{settings['config']}`), global batch {settings['batch']}, learning rate "
           f"{settings['learning_rate']:.4g} ({settings['reference_lr']:g} x sqrt({settings['batch']} / "
           f"{settings['reference_batch']})), {settings['steps']} steps, validation every {settings['eval_every']}.",
           "", "| run | warm-up steps | best step (val loss) | best val loss | test ROC-AUC (best) | test PR-AUC "
           "(best) | test ROC-AUC (last) | test PR-AUC (last) | max train loss after step 10 | wall s |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
  for r in rows:
    lines.append(f"| {r['run']} | {r['warmup_steps']} | {r['best_step']} | {r['best_val_loss']:.4f} | "
                 f"{100 * r['test_best']['roc_auc']:.2f} | {100 * r['test_best']['pr_auc']:.2f} | "
                 f"{100 * r['test_last']['roc_auc']:.2f} | {100 * r['test_last']['pr_auc']:.2f} | "
                 f"{r['max_train_loss_after_10']:.4f} | {r['wall_s']:.0f} |")
  return "\n".join(lines) + "\n"


def main(argv):
  del argv
  if FLAGS.dry_run:
    tmp = tempfile.mkdtemp(prefix="warmup_dry_")
    FLAGS.runs_dir, FLAGS.out = os.path.join(tmp, "runs"), os.path.join(tmp, "out")
    FLAGS.steps, FLAGS.eval_every, FLAGS.log_every, FLAGS.batch = 4, 2, 1, 8
  os.makedirs(FLAGS.runs_dir, exist_ok=True)
  os.makedirs(FLAGS.out, exist_ok=True)
  p = plan()
  settings = p["settings"]
  print(json.dumps(settings), flush=True)
  jsonl = os.path.join(FLAGS.out, "warmup.jsonl")
  done = {}
  if os.path.exists(jsonl):
    with open(jsonl) as f:
      done = {r["run"]: r for r in map(json.loads, f) if r.get("settings") == settings}
  data = {}
  for i, (name, overrides) in enumerate(p["runs"].items(), 1):
    print(f"[{i}/{len(p['runs'])}] {name}", flush=True)
    workdir = train(name, overrides, FLAGS.runs_dir)
    data[name] = curves(workdir)
    if name not in done:
      with open(os.path.join(workdir, "summary.json")) as f:
        summary = json.load(f)
      tr = data[name]["train"]
      row = {"run": name, "workdir": workdir, "settings": settings,
             "warmup_steps": overrides["train.warmup_steps"], "best_step": summary["best_step"],
             "best_val_loss": summary["best"], "wall_s": summary["wall_s"],
             "max_train_loss_after_10": max((l for s, l in zip(tr["step"], tr["loss"]) if s > 10), default=0.0),
             "test_best": evaluate(workdir, "best"), "test_last": evaluate(workdir, "latest"),
             "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": commit()}
      with open(jsonl, "a") as f:
        f.write(json.dumps(row) + "\n")
      done[name] = row
  rows = [done[n] for n in p["runs"]]
  with open(os.path.join(FLAGS.out, "warmup.json"), "w") as f:
    json.dump({"settings": settings, "curves": data, "rows": rows}, f, indent=1)
  md = markdown(rows, settings)
  with open(os.path.join(FLAGS.out, "warmup.md"), "w") as f:
    f.write(md)
  plot(os.path.join(FLAGS.out, "warmup.png"), data, settings)
  print(md)


def commit() -> str:
  try:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
  except OSError:
    return ""


if __name__ == "__main__":
  app.run(main)
