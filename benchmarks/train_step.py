"""Step-only throughput: chunks/s and step time of the jitted train step on device-resident synthetic batches.

``python benchmarks/train_step.py [--models=smoke,mtt_spectrogram,mtt_waveform --dtypes=float32,bfloat16
--batch=0 --steps=5 --repeats=3 --json_out=benchmarks/results/train_step.jsonl]``

No input pipeline: one random batch is put on the devices once and the step (``step.jit_train_step``, as the
trainer runs it: state donated, batch split over all devices) runs ``--steps`` times per repeat, timed to
``block_until_ready``; the table gives the median over ``--repeats``. FLOPs per chunk come from XLA's cost
analysis of the compiled step (forward + backward + Adam); utilisation is quoted where a peak is known.
"""
from __future__ import annotations

import time

import jax
import numpy as np
from absl import app, flags

from benchmarks import harness

flags.DEFINE_list("models", list(harness.MODELS), "Benchmark models (benchmarks/harness.py MODELS).")
flags.DEFINE_list("dtypes", ["float32", "bfloat16"], "Compute dtypes.")
flags.DEFINE_integer("batch", 0, "Global batch (0 = the config's).")
flags.DEFINE_list("batch_sweep", [], "Global batches to try in increasing order (stops when chunks/s gains < 5% "
                  "or a batch fails, e.g. out of memory); the best row is marked best=True. Overrides --batch.")
flags.DEFINE_float("deadline_s", 0, "Stop starting new benchmarks after this many seconds (0 = no limit).")
flags.DEFINE_integer("steps", 5, "Timed steps per repeat.")
flags.DEFINE_integer("repeats", 3, "Repeats (median reported).")
flags.DEFINE_integer("n_tags", 50, "Output tags.")
flags.DEFINE_string("json_out", "benchmarks/results/train_step.jsonl", "Append results here ('' = don't).")
FLAGS = flags.FLAGS


def bench(name: str, dtype: str, batch: int = 0, *, steps: int = 5, repeats: int = 3, n_tags: int = 50,
          kernels: str = "auto", peak: float | None = None) -> dict:
  """One row: the step of ``name`` at global ``batch`` (0 = the config's) in ``dtype``; ``utilisation`` is
  FLOP/s over ``peak`` (default: the published peak of the device kind, if known)."""
  c = harness.model_config(name, dtype=dtype, batch=batch, kernels=kernels)
  train_step, state, batch = harness.synthetic_step(c, n_tags)
  batch_size = c.train.global_batch_size
  lr = np.float32(1e-4)
  t0 = time.perf_counter()
  compiled = train_step.lower(state, batch, lr).compile()
  compile_s = time.perf_counter() - t0
  cost = compiled.cost_analysis()
  flops = float((cost[0] if isinstance(cost, list) else cost).get("flops", 0.0))
  holder = {"state": state}

  def run():
    s = holder["state"]
    for _ in range(steps):
      s, _ = compiled(s, batch, lr)   # the executable compiled above (calling the jitted function compiles again)
    jax.block_until_ready(s)
    holder["state"] = s

  run()   # warm-up (first dispatch, allocator)
  seconds = harness.median(harness.timed(run, repeats))
  step_s = seconds / steps
  peak = peak or harness.peak_flops(jax.devices()[0].device_kind, dtype)
  params_n = sum(int(x.size) for x in jax.tree.leaves(state["params"]))
  return {"model": name, "dtype": dtype, "kernels": c.model.kernels, "params": params_n, "batch": batch_size,
          "chunk_s": c.data.chunk_seconds, "compile_s": round(compile_s, 1), "step_ms": round(1e3 * step_s, 1),
          "chunks_per_s": round(batch_size / step_s, 1), "gflop_per_chunk": round(flops / batch_size / 1e9, 3),
          "tflop_per_s": round(flops / step_s / 1e12, 4),
          "utilisation": round(flops / step_s / peak, 3) if peak else None}


def sweep(name: str, dtype: str, batches: list[int], t_end: float, on_row=None, **kw) -> list[dict]:
  """Rows of ``bench`` (``kw``: its options) at increasing batches until the rate stops growing (>= 5 %), a
  batch fails, or the deadline; the fastest row gets ``best=True`` (a failed batch is a row with its error, not
  a crash). ``on_row(row)`` sees each row as soon as it exists."""
  rows = []
  for b in batches:
    if time.perf_counter() > t_end:
      rows.append({"model": name, "dtype": dtype, "batch": b, "error": "skipped: deadline"})
      break
    try:
      rows.append(bench(name, dtype, b, **kw))
    except Exception as e:   # noqa: BLE001 - e.g. RESOURCE_EXHAUSTED at a large batch ends the sweep
      rows.append({"model": name, "dtype": dtype, "batch": b, "error": f"{type(e).__name__}: {str(e)[:200]}"})
    print(rows[-1], flush=True)
    if on_row:
      on_row(rows[-1])
    if "error" in rows[-1]:
      break
    done = [r for r in rows if "chunks_per_s" in r]
    if len(done) >= 2 and done[-1]["chunks_per_s"] < 1.05 * done[-2]["chunks_per_s"]:
      break
  done = [r for r in rows if "chunks_per_s" in r]
  if done:
    max(done, key=lambda r: r["chunks_per_s"])["best"] = True
  return rows


def main(argv):
  del argv
  rows = []
  t_end = time.perf_counter() + (FLAGS.deadline_s or float("inf"))
  batches = sorted(int(b) for b in FLAGS.batch_sweep)
  for name in FLAGS.models:
    for dtype in FLAGS.dtypes:
      kw = {"steps": FLAGS.steps, "repeats": FLAGS.repeats, "n_tags": FLAGS.n_tags}
      if batches:
        rows += sweep(name, dtype, batches, t_end, **kw)
      elif time.perf_counter() < t_end:
        rows.append(bench(name, dtype, FLAGS.batch, **kw))
        print(rows[-1], flush=True)
  harness.report("train_step", rows, ["model", "dtype", "params", "batch", "chunk_s", "compile_s", "step_ms",
                                      "chunks_per_s", "gflop_per_chunk", "tflop_per_s", "utilisation", "best", "error"],
                 FLAGS.json_out, {"steps": FLAGS.steps, "repeats": FLAGS.repeats, "batch_sweep": batches})


if __name__ == "__main__":
  app.run(main)
