"""The phases of ``benchmarks/device_check.sh``, one per process: ``python3 -m benchmarks.device_phases PHASE
--out DIR [--dry_run] [--budget_s S] [--work DIR]``.

Every phase appends its rows to ``DIR/rows.jsonl`` one at a time, each as soon as it exists (``{"phase": ...}``),
so a phase stopped at its time limit keeps what it measured; ``summary`` reads them back into ``summary.md``
and ``summary.json``. ``--budget_s``: the phase starts no new measurement after that many seconds (the shell
also kills it a little later). ``--dry_run``: the same phases at toy sizes on the CPU (the test of this script).

Phases: ``env`` (versions, device, memory), ``matmul`` (measured bf16 matmul peak: the MFU denominator), ``step``
(step-only chunks/s and MFU of the paper's models, float32 and bfloat16, batch sweep), ``kernels`` (fused vs
plain, ``model.kernels``), ``e2e`` (training from packed shards of the generated corpus), ``smoke`` (a short
training run on the generated corpus, test ROC-AUC and wall time).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

GOAL_E2E = ("msd_spectrogram", 10_000)       # 3-s chunks/s end to end, from packed shards
GOAL_MFU = ("wave-x4-f512-u500", "bfloat16", 0.40)   # step-only MFU against the measured bf16 peak

# step phase: (model, batches to sweep); the goals' models first, so a short budget still measures them
STEP_MODELS = [("wave-x4-f512-u500", [512, 2048, 8192]), ("spec-k16-f512-u500", [512, 2048, 8192]),
               ("spec-k8-f512-u500", [512, 2048, 8192]), ("wave-x1-f512-u500", [512, 2048, 8192]),
               ("private_waveform", [128, 512, 2048]), ("private_spectrogram", [128, 512, 2048])]
DRY_STEP_MODELS = [("tiny", [2])]
KERNEL_MODELS = [("wave-x4-f512-u500", 1024), ("spec-k16-f512-u500", 1024)]
DRY_KERNEL_MODELS = [("tiny", 2)]


class Rows:
  """Appends ``{"phase": phase, **row}`` lines to ``OUT/rows.jsonl``, flushed one by one."""

  def __init__(self, out: str, phase: str):
    os.makedirs(out, exist_ok=True)
    self.path, self.phase = os.path.join(out, "rows.jsonl"), phase

  def __call__(self, row: dict) -> dict:
    row = {"phase": self.phase, "time": _now(), **row}
    with open(self.path, "a") as f:
      f.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)
    return row


def _now() -> str:
  return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def read_rows(out: str, phase: str | None = None) -> list[dict]:
  path = os.path.join(out, "rows.jsonl")
  if not os.path.exists(path):
    return []
  rows = [json.loads(line) for line in open(path) if line.strip()]
  return [r for r in rows if phase is None or r["phase"] == phase]


def measured_peak(out: str) -> float | None:
  """The bf16 matmul peak (FLOP/s) the matmul phase measured, if it ran."""
  rates = [r["tflop_per_s"] for r in read_rows(out, "matmul") if r.get("dtype") == "bfloat16" and "tflop_per_s" in r]
  return 1e12 * max(rates) if rates else None


# ---- 1 environment ----------------------------------------------------------------------------------------------

def env(a, rows: Rows) -> None:
  import importlib.metadata as md

  import jax
  dev = jax.devices()[0]
  versions = {}
  for name in ("jax", "jaxlib", "jax-cuda13-plugin", "jax-cuda12-plugin", "numpy", "flax", "optax",
               "orbax-checkpoint", "tensorstore", "grain", "array-record", "clu", "ml-collections", "soundfile",
               "soxr", "tensorboardX", "orjson", "scikit-learn"):
    try:
      versions[name] = md.version(name)
    except md.PackageNotFoundError:
      pass
  try:
    memory = {k: v for k, v in (dev.memory_stats() or {}).items() if k in ("bytes_limit", "bytes_in_use")}
  except Exception:   # noqa: BLE001 - CPU devices may have none
    memory = {}
  smi = shutil.which("nvidia-smi")
  gpu = subprocess.run([smi, "--query-gpu=name,memory.total,driver_version,clocks.max.sm", "--format=csv,noheader"],
                       capture_output=True, text=True).stdout.strip() if smi else ""
  rows({"backend": jax.default_backend(), "device_kind": dev.device_kind, "devices": jax.device_count(),
        "cpus": os.cpu_count(), "python": platform.python_version(), "nvidia_smi": gpu, "memory": memory,
        "load_avg_1m": round(os.getloadavg()[0], 1), "versions": versions, "dry_run": a.dry_run})


# ---- 2 measured matmul peak ---------------------------------------------------------------------------------------

def matmul(a, rows: Rows) -> None:
  import jax
  sizes = {"bfloat16": [128, 256], "float32": [128]} if a.dry_run else \
      {"bfloat16": [4096, 8192, 16384], "float32": [4096, 8192]}
  t_end = time.perf_counter() + a.budget_s
  for dtype in ("bfloat16", "float32"):
    for n in sizes[dtype]:
      if time.perf_counter() > t_end:
        return
      x = jax.random.normal(jax.random.key(0), (n, n), dtype)
      y = jax.random.normal(jax.random.key(1), (n, n), dtype)
      f = jax.jit(lambda x, y: x @ y)
      jax.block_until_ready(f(x, y))
      reps = 3 if a.dry_run else 20
      best = float("inf")
      for _ in range(3):   # the best of 3 timings of `reps` products: the peak this chip reaches
        t0 = time.perf_counter()
        for _ in range(reps):
          z = f(x, y)
        jax.block_until_ready(z)
        best = min(best, (time.perf_counter() - t0) / reps)
      rows({"dtype": dtype, "n": n, "ms": round(1e3 * best, 3), "tflop_per_s": float(f"{2 * n ** 3 / best / 1e12:.4g}")})


# ---- 3 step-only throughput and MFU --------------------------------------------------------------------------------

def step(a, rows: Rows) -> None:
  from benchmarks import train_step
  peak = measured_peak(a.out)
  t_end = time.perf_counter() + a.budget_s
  kw = {"steps": 1, "repeats": 1} if a.dry_run else {"steps": 5, "repeats": 2}
  for name, batches in (DRY_STEP_MODELS if a.dry_run else STEP_MODELS):
    for dtype in ("bfloat16", "float32"):
      sweep = train_step.sweep(name, dtype, batches, t_end, on_row=lambda r: rows(_mfu(r, peak)), peak=peak, **kw)
      done = [r for r in sweep if "chunks_per_s" in r]
      if done:   # the sweep's fastest batch, marked again as its own row (rows are never rewritten)
        best = max(done, key=lambda r: r["chunks_per_s"])
        rows({**_mfu(best, peak), "best": True})


def _mfu(row: dict, peak: float | None) -> dict:
  if "tflop_per_s" in row:
    row = {**row, "mfu": round(1e12 * row["tflop_per_s"] / peak, 4) if peak else None}
  row.pop("utilisation", None)
  return row


# ---- 4 kernel A/B: fused CPU rewrites vs plain forms --------------------------------------------------------------

def kernels(a, rows: Rows) -> None:
  from benchmarks import train_step
  peak = measured_peak(a.out)
  t_end = time.perf_counter() + a.budget_s
  kw = {"steps": 1, "repeats": 1} if a.dry_run else {"steps": 10, "repeats": 3}
  for name, batch in (DRY_KERNEL_MODELS if a.dry_run else KERNEL_MODELS):
    for dtype in (("float32",) if a.dry_run else ("bfloat16", "float32")):
      for form in ("plain", "fused"):
        if time.perf_counter() > t_end:
          return
        try:
          rows(_mfu(train_step.bench(name, dtype, batch, kernels=form, peak=peak, **kw), peak))
        except Exception as e:   # noqa: BLE001 - one failing form is a row, not the end of the phase
          rows({"model": name, "dtype": dtype, "kernels": form, "batch": batch, "error": f"{type(e).__name__}: "
                f"{str(e)[:200]}"})


# ---- 5 end to end from packed shards ---------------------------------------------------------------------------------

def e2e(a, rows: Rows) -> None:
  from benchmarks import end_to_end
  t_end = time.perf_counter() + a.budget_s
  if a.dry_run:
    runs = [("tiny", 4, {"windows": 1, "window_steps": 2})]
  else:
    # at most 2048: 100 steps of it are ~200k chunks, ~20 s at the goal's 10k chunks/s
    runs = [("msd_spectrogram", min(2048, _best_batch(a.out, "spec-k16-f512-u500", 1024)),
             {"windows": 4, "window_steps": 20}),
            ("mtt_waveform", min(2048, _best_batch(a.out, "wave-x4-f512-u500", 1024)), {"windows": 3, "window_steps": 20})]
  for name, batch, kw in runs:
    if time.perf_counter() > t_end:
      return
    t0 = time.perf_counter()
    try:
      row = end_to_end.bench(name, "packed", os.path.join(a.work, f"pack-{name}"), dtype="bfloat16", batch=batch,
                             cache_dir=os.path.join(a.work, "corpus"), **kw)
      rows({**row, "wall_s": round(time.perf_counter() - t0, 1)})
    except Exception as e:   # noqa: BLE001
      rows({"model": name, "source": "packed", "batch": batch, "error": f"{type(e).__name__}: {str(e)[:300]}"})


def _best_batch(out: str, model: str, default: int) -> int:
  best = [r for r in read_rows(out, "step") if r.get("model") == model and r.get("best") and
          r.get("dtype") == "bfloat16"]
  return int(best[-1]["batch"]) if best else default


# ---- 6 a smoke training run that learns ----------------------------------------------------------------------------

def smoke(a, rows: Rows) -> None:
  from configs import smoke as smoke_cfg
  from jaxtag.evaluation import evaluate
  from jaxtag.training import train
  c = smoke_cfg.get_config()
  # the numpy-generated corpus (the rendered one needs the [render] extra, which the device image lacks)
  c.data.dataset, c.data.dataset_title, c.data.cache_dir = "generated", "jaxtag generated corpus", \
      os.path.join(a.work, "corpus")
  if a.dry_run:   # the benchmarks' tiny model (benchmarks/harness.py)
    from benchmarks import harness
    tiny = harness.model_config("tiny")
    c.data.update(generated_n=tiny.data.generated_n, generated_clip_seconds=tiny.data.generated_clip_seconds,
                  chunk_seconds=tiny.data.chunk_seconds, num_workers=0, read_threads=1)
    c.model.update(tiny.model.to_dict())
    c.train.update(steps=4, eval_every=4, checkpoint_every=4, log_every=2, global_batch_size=4)
    c.eval.batch_size = 16
  workdir = os.path.join(a.work, "smoke-run")
  t0 = time.perf_counter()
  summary = train.train_and_evaluate(c, workdir)
  train_s = time.perf_counter() - t0
  result = evaluate.evaluate(workdir, "test")
  rows({"model": "smoke", "dataset": c.data.dataset, "steps": summary.get("step", c.train.steps),
        "batch": c.train.global_batch_size, "train_wall_s": round(train_s, 1),
        "wall_s": round(time.perf_counter() - t0, 1), "test_roc_auc": round(float(result["roc_auc"]), 4),
        "test_pr_auc": round(float(result["pr_auc"]), 4), "n_songs": result.get("n_songs")})


# ---- summary ---------------------------------------------------------------------------------------------------------

def summary(a, rows: Rows | None = None) -> dict:
  """``summary.json`` (every row, by phase, plus the goals) and ``summary.md`` (the tables)."""
  del rows
  by = {p: read_rows(a.out, p) for p in PHASES if p != "summary"}
  peak = measured_peak(a.out)
  e2e_rate = max((r["chunks_per_s"] for r in by["e2e"] if r.get("model") == GOAL_E2E[0] and "chunks_per_s" in r),
                 default=None)
  mfu = max((r["mfu"] for r in by["step"] if (r.get("model"), r.get("dtype")) == GOAL_MFU[:2] and r.get("mfu")),
            default=None)
  goals = [{"goal": f">= {GOAL_E2E[1]:,} 3-s chunks/s end to end, {GOAL_E2E[0]} (packed shards)",
            "measured": e2e_rate, "met": None if e2e_rate is None else e2e_rate >= GOAL_E2E[1]},
           {"goal": f">= {100 * GOAL_MFU[2]:.0f} % {GOAL_MFU[1]} MFU step-only, {GOAL_MFU[0]}",
            "measured": mfu, "met": None if mfu is None else mfu >= GOAL_MFU[2]}]
  result = {"time": _now(), "commit": a.commit, "dry_run": a.dry_run, "peak_tflop_per_s": peak and peak / 1e12,
            "goals": goals, **by}
  with open(os.path.join(a.out, "summary.json"), "w") as f:
    json.dump(result, f, indent=1)
  md = [f"# Device check{' (dry run, CPU)' if a.dry_run else ''}", ""]
  for r in by["env"][-1:]:
    md += [f"{r['device_kind']} x{r['devices']} ({r['backend']}), {r['cpus']} CPUs, Python {r['python']}, "
           f"jax {r['versions'].get('jax')}, flax {r['versions'].get('flax')}; {r['nvidia_smi'] or 'no nvidia-smi'}; "
           f"commit {a.commit}, {result['time']}", ""]
  md += ["## Goals", "", "| goal | measured | met |", "|---|---:|---|"]
  for g in goals:
    shown = "-" if g["measured"] is None else (f"{100 * g['measured']:.1f} %" if "MFU" in g["goal"]
                                               else f"{g['measured']:,.0f}")
    md.append(f"| {g['goal']} | {shown} | {'-' if g['met'] is None else 'yes' if g['met'] else 'no'} |")
  md += ["", f"## Matmul peak (MFU denominator: {'-' if peak is None else f'{peak / 1e12:.3g}'} TFLOP/s bf16)", "",
         "| dtype | n | ms | TFLOP/s |", "|---|---:|---:|---:|"]
  md += [f"| {r['dtype']} | {r['n']} | {r['ms']} | {r['tflop_per_s']} |" for r in by["matmul"]]
  md += ["", "## Step-only (best batch of each sweep; kernels: auto)", "",
         "| model | dtype | batch | chunks/s | step ms | GFLOP/chunk | TFLOP/s | MFU |", "|---|---|---:|---:|---:|---:|---:|---:|"]
  md += [_step_line(r) for r in by["step"] if r.get("best")]
  md += [f"(stopped: {r['model']} {r['dtype']} batch {r['batch']}: {r['error'][:120]})" for r in by["step"]
         if "error" in r]
  md += ["", "## Kernels: fused CPU rewrites vs plain forms (`model.kernels`)", "",
         "| model | dtype | kernels | batch | chunks/s | step ms | MFU |", "|---|---|---|---:|---:|---:|---:|"]
  md += [f"| {r['model']} | {r['dtype']} | {r['kernels']} | {r['batch']} | "
         f"{r.get('chunks_per_s', r.get('error', '-'))} | {r.get('step_ms', '-')} | {_pct(r.get('mfu'))} |"
         for r in by["kernels"]]
  md += ["", "## End to end from packed shards (bfloat16)", "", "| model | batch | chunks/s | min | max | wall s |",
         "|---|---:|---:|---:|---:|---:|"]
  md += [f"| {r['model']} | {r['batch']} | {r.get('chunks_per_s', r.get('error', '-'))} | {r.get('min', '-')} | "
         f"{r.get('max', '-')} | {r.get('wall_s', '-')} |" for r in by["e2e"]]
  md += ["", "## Smoke training run (generated corpus)", "", "| steps | batch | train s | test ROC-AUC | test PR-AUC |",
         "|---:|---:|---:|---:|---:|"]
  md += [f"| {r['steps']} | {r['batch']} | {r['train_wall_s']} | {r['test_roc_auc']} | {r['test_pr_auc']} |"
         for r in by["smoke"]]
  missing = [p for p, rs in by.items() if not rs]
  if missing:
    md += ["", f"Phases without rows (stopped by their time limit or failed; see log.txt): {', '.join(missing)}"]
  with open(os.path.join(a.out, "summary.md"), "w") as f:
    f.write("\n".join(md) + "\n")
  print("\n".join(md))
  return result


def _pct(v) -> str:
  return "-" if v is None else f"{100 * v:.1f} %"


def _step_line(r: dict) -> str:
  return (f"| {r['model']} | {r['dtype']} | {r['batch']} | {r['chunks_per_s']:.0f} | {r['step_ms']} | "
          f"{r['gflop_per_chunk']} | {r['tflop_per_s']} | {_pct(r.get('mfu'))} |")


PHASES = {"env": env, "matmul": matmul, "step": step, "kernels": kernels, "e2e": e2e, "smoke": smoke,
          "summary": summary}


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("phase", choices=list(PHASES))
  p.add_argument("--out", required=True)
  p.add_argument("--work", default="", help="scratch directory for corpora, packs and runs (default: a temp dir)")
  p.add_argument("--budget_s", type=float, default=float("inf"))
  p.add_argument("--dry_run", action="store_true")
  p.add_argument("--commit", default="")
  a = p.parse_args(argv)
  from absl import flags, logging
  flags.FLAGS.mark_as_parsed()   # grain reads its absl flags (defaults) in its workers
  logging.set_verbosity(logging.WARNING)
  with tempfile.TemporaryDirectory(prefix="jaxtag-device-") as tmp:
    a.work = a.work or tmp
    os.makedirs(a.work, exist_ok=True)
    PHASES[a.phase](a, Rows(a.out, a.phase))


if __name__ == "__main__":   # required: grain workers re-import __main__
  sys.exit(main())
