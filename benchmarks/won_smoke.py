"""Won et al.'s models at smoke size on the rendered corpus, beside the smoke spectrogram model and the GBT
baseline, each neural model given the same training compute.

``python -m benchmarks.won_smoke [--models=spec,short,short_res,hcnn,se,attention,gbt --budget_cpu_s=300
--out=benchmarks/results/won_smoke --runs_dir=runs/won_smoke]``

Models: ``spec`` is ``configs/smoke.py`` (the smoke recipe: spectrogram front-end, lr 4e-3, dropout 0.2);
``short``, ``short_res``, ``hcnn``, ``se`` and ``attention`` are ``configs/won.py:NAME,smoke`` (a quarter of the
authors' widths, their input length up to 5 s, batch 32, Adam 2e-3 with an L2 of 1e-4, dropout 0.5) with the
data switched from the numpy corpus to the rendered one (``data.dataset=rendered``, 600 clips of 6 s, the smoke
spectrogram's corpus and split); ``gbt`` is ``python -m jaxtag.analyze baseline --config=configs/smoke.py``.

Equal training time: each neural model trains under ``benchmarks/budget_train.py`` until it has used
``--budget_cpu_s`` CPU seconds of training (compilation and validation not counted; CPU rather than wall
seconds because the machine is shared and its load changes during the run), validating ``--validations`` times
along the way; the test split is then scored at the best validation loss (``evaluate --checkpoint=best``) and
at the budget's last step (``--checkpoint=latest``). The GBT is not budgeted (it is not iterative in the same
sense); its CPU time is reported.

Writes ``OUT/won_smoke.jsonl`` (one row per finished model, appended as each finishes), ``OUT/won_smoke.md`` and
``OUT/won_smoke.json``. Resumable: rerun the same command; a model already in the JSONL is skipped, and a model
whose run did not finish is trained again from scratch (its budget clock does not survive a restart).
``--dry_run`` runs every model for a few CPU seconds in a temporary folder (a script check, not a measurement).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import psutil
from absl import app, flags

MODELS = ("spec", "short", "short_res", "hcnn", "se", "attention", "gbt")
RENDERED = {"data.dataset": "rendered", "data.dataset_title": "jaxtag rendered corpus", "data.generated_n": 600,
            "data.generated_clip_seconds": 6.0}
FAR = 1_000_000   # steps, eval_every, checkpoint_every: beyond any budget (the budget hook stops the run)

flags.DEFINE_list("models", list(MODELS), f"Models, in order: {', '.join(MODELS)}.")
flags.DEFINE_float("budget_cpu_s", 300.0, "Training CPU seconds per neural model.", lower_bound=1.0)
flags.DEFINE_integer("validations", 6, "Validations spread over each budget.", lower_bound=1)
flags.DEFINE_string("runs_dir", "runs/won_smoke", "Run directories go here.")
flags.DEFINE_string("out", "benchmarks/results/won_smoke", "Result files go here.")
flags.DEFINE_bool("dry_run", False, "A few CPU seconds per model in a temporary folder (script check).")
FLAGS = flags.FLAGS


def command(model: str, workdir: str) -> list[str]:
  if model == "gbt":
    return [sys.executable, "-m", "jaxtag.analyze", "baseline", "--config=configs/smoke.py", f"--workdir={workdir}",
            "--json"]
  config = "configs/smoke.py" if model == "spec" else f"configs/won.py:{model},smoke"
  overrides = {} if model == "spec" else dict(RENDERED)
  overrides.update({"train.steps": FAR, "train.eval_every": FAR, "train.checkpoint_every": FAR,
                    "train.log_every": 10})
  return ([sys.executable, "-m", "benchmarks.budget_train", f"--config={config}", f"--workdir={workdir}",
           f"--budget_cpu_s={FLAGS.budget_cpu_s}", f"--validations={FLAGS.validations}"]
          + [f"--config.{k}={v}" for k, v in overrides.items()])


def run_logged(cmd: list[str], log: str, label: str) -> tuple[int, float, float]:
  """Runs ``cmd`` into ``log``, printing progress every 30 s; ``(exit status, wall s, CPU s of its tree)``."""
  t0 = time.time()
  with open(log, "a") as f:
    f.write(f"\n$ {' '.join(cmd)}\n")
    f.flush()
    proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)
    ps, cpu = psutil.Process(proc.pid), 0.0
    while proc.poll() is None:
      try:
        cpu = max(cpu, sum(sum(p.cpu_times()[:2]) for p in [ps] + ps.children(recursive=True)))
      except psutil.Error:
        pass
      print(f"  {label}: {time.time() - t0:.0f} s wall, {cpu:.0f} CPU s of its budget {FLAGS.budget_cpu_s:.0f} "
            f"(+ compile, validation)", flush=True)
      for _ in range(30):
        if proc.poll() is not None:
          break
        time.sleep(1)
  return proc.returncode, time.time() - t0, cpu


def evaluate(workdir: str, which: str) -> dict:
  out = subprocess.run([sys.executable, "-m", "jaxtag.evaluate", f"--workdir={workdir}", f"--checkpoint={which}",
                        "--json"], capture_output=True, text=True)
  if out.returncode:
    raise SystemExit(f"evaluate {workdir} ({which}) failed:\n{out.stderr[-2000:]}")
  return json.loads(out.stdout.strip().splitlines()[-1])


def measure(model: str, attempt: int = 0) -> dict:
  workdir = os.path.join(FLAGS.runs_dir, model)
  if os.path.exists(workdir):   # an unfinished run: its budget clock is gone, start over
    shutil.rmtree(workdir)
  cmd = command(model, workdir)
  code, wall, cpu = run_logged(cmd, os.path.join(FLAGS.runs_dir, f"{model}.log"), model)
  if code:
    if attempt < 1:   # e.g. a loader worker killed for memory on the shared machine: once more, from scratch
      print(f"  {model}: exit {code}; starting it again (see {FLAGS.runs_dir}/{model}.log)", flush=True)
      return measure(model, attempt + 1)
    raise SystemExit(f"{model}: exit {code}; see {FLAGS.runs_dir}/{model}.log")
  row = {"model": model, "command": " ".join(cmd[1:]), "workdir": workdir, "wall_s": round(wall, 1),
         "cpu_s_total": round(cpu, 1)}
  if model == "gbt":
    with open(os.path.join(FLAGS.runs_dir, f"{model}.log")) as f:
      res = json.loads([line for line in f if line.startswith("{")][-1])
    row.update(test_best={k: res[k] for k in ("roc_auc", "pr_auc", "rmse")}, params=None)
    return row
  with open(os.path.join(workdir, "budget.json")) as f:
    row["budget"] = json.load(f)
  with open(os.path.join(workdir, "summary.json")) as f:
    row["params"] = json.load(f)["params"]
  with open(os.path.join(workdir, "config.json")) as f:
    c = json.load(f)
  row["model_name"] = c["model"]["name"]
  row["chunk_seconds"] = c["data"]["chunk_seconds"]
  row["test_best"] = evaluate(workdir, "best")
  row["test_last"] = evaluate(workdir, "latest")
  return row


def markdown(rows: list[dict]) -> str:
  lines = ["| model | jaxtag model | params | input s | steps in budget | train CPU s | train wall s | best step "
           "| test ROC-AUC (best val) | test PR-AUC (best val) | test ROC-AUC (last) | test PR-AUC (last) |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
  for r in rows:
    tb, tl = r["test_best"], r.get("test_last")
    if r["model"] == "gbt":
      lines.append(f"| gbt | per-tag GBT on features | - | 6 (whole clip) | - | {r['cpu_s_total']:.0f} (all) | "
                   f"{r['wall_s']:.0f} (all) | - | {100 * tb['roc_auc']:.2f} | {100 * tb['pr_auc']:.2f} | - | - |")
      continue
    b = r["budget"]
    lines.append(f"| {r['model']} | {r['model_name']} | {r['params']:,} | {r['chunk_seconds']:.2f} | "
                 f"{b['steps_counted']} | {b['train_cpu_s']:.0f} | {b['train_wall_s']:.0f} | {b['best_step']} | "
                 f"{100 * tb['roc_auc']:.2f} | {100 * tb['pr_auc']:.2f} | {100 * tl['roc_auc']:.2f} | "
                 f"{100 * tl['pr_auc']:.2f} |")
  return "\n".join(lines) + "\n"


def main(argv):
  del argv
  for m in FLAGS.models:
    if m not in MODELS:
      raise app.UsageError(f"unknown model {m!r}; choose from {', '.join(MODELS)}")
  if FLAGS.dry_run:
    tmp = tempfile.mkdtemp(prefix="won_smoke_dry_")
    FLAGS.runs_dir, FLAGS.out, FLAGS.budget_cpu_s, FLAGS.validations = (os.path.join(tmp, "runs"),
                                                                      os.path.join(tmp, "out"), 3.0, 1)
  os.makedirs(FLAGS.runs_dir, exist_ok=True)
  os.makedirs(FLAGS.out, exist_ok=True)
  jsonl = os.path.join(FLAGS.out, "won_smoke.jsonl")
  done = {}
  if os.path.exists(jsonl):
    with open(jsonl) as f:
      done = {r["model"]: r for r in map(json.loads, f) if r.get("budget_cpu_s") == FLAGS.budget_cpu_s}
  t0 = time.time()
  todo = [m for m in FLAGS.models if m not in done]
  for k, model in enumerate(todo, 1):
    eta = "" if k == 1 else f", ETA {(time.time() - t0) / (k - 1) * (len(todo) - k + 1):.0f} s"
    print(f"[{k}/{len(todo)}] {model}{eta}", flush=True)
    row = measure(model)
    row.update(budget_cpu_s=FLAGS.budget_cpu_s, date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               commit=subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                     text=True).stdout.strip(),
               load_avg=round(os.getloadavg()[0], 1))
    with open(jsonl, "a") as f:
      f.write(json.dumps(row) + "\n")
    done[model] = row
    print(f"  {model}: test ROC-AUC {row['test_best']['roc_auc']:.4f}, PR-AUC {row['test_best']['pr_auc']:.4f}",
          flush=True)
  rows = [done[m] for m in FLAGS.models if m in done]
  md = markdown(rows)
  with open(os.path.join(FLAGS.out, "won_smoke.md"), "w") as f:
    f.write(md)
  with open(os.path.join(FLAGS.out, "won_smoke.json"), "w") as f:
    json.dump({"budget_cpu_s": FLAGS.budget_cpu_s, "rows": rows}, f, indent=1)
  print(md)


if __name__ == "__main__":
  app.run(main)
