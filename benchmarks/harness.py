"""Shared by the throughput benchmarks: the benchmarked model configs, repeated timing with medians, the
machine description every result carries, a printed table, and one JSON line appended per run.

Why medians of repeats: the CPU these numbers come from is shared (load average recorded with each run).
"""
from __future__ import annotations

import datetime
import json
import os
import statistics
import time

from configs import msd, mtt, private_100k, smoke, won
from jaxtag.data import tuning

# name -> config getter; the MTT models are the paper's best (spectrogram k=8, waveform x4), fed by the
# generated corpus so no dataset is needed (the rates depend on chunk length and batch, not on the music).
MODELS = {
    "smoke": lambda: smoke.get_config(),
    "tiny": lambda: _tiny(),   # for dry runs of the benchmark scripts: compiles in seconds on a CPU
    "mtt_spectrogram": lambda: _on_generated(mtt.get_config("spectrogram")),
    "mtt_waveform": lambda: _on_generated(mtt.get_config("waveform")),
    "msd_spectrogram": lambda: _on_generated(msd.get_config("spectrogram")),
    # the six models of the PyTorch peer (../shared/peer), by the peer's names
    "spec-k8-f64-u200": lambda: _on_generated(mtt.get_config("spectrogram,small")),
    "spec-k8-f512-u500": lambda: _on_generated(mtt.get_config("spectrogram")),
    "spec-k16-f512-u500": lambda: _on_generated(msd.get_config("spectrogram")),
    "wave-x1-f512-u500": lambda: _on_generated(msd.get_config("waveform")),
    "wave-x2-f64-u200": lambda: _on_generated(mtt.get_config("waveform,small")),
    "wave-x4-f512-u500": lambda: _on_generated(mtt.get_config("waveform")),
    # private-style: 15-s chunks, 9-layer waveform x1 / spectrogram k16, MSE on graded targets
    "private_waveform": lambda: _on_generated(private_100k.get_config("waveform")),
    "private_spectrogram": lambda: _on_generated(private_100k.get_config("spectrogram")),
    # Won et al. 2020 at full size and the authors' input lengths (configs/won.py), by their model_type names
    **{f"won_{t}": (lambda t=t: _won(t)) for t in won.NEW_MODELS},
}
WON_MODELS = tuple(f"won_{t}" for t in won.NEW_MODELS)
PEER_MODELS = ("spec-k8-f64-u200", "spec-k8-f512-u500", "spec-k16-f512-u500", "wave-x1-f512-u500",
               "wave-x2-f64-u200", "wave-x4-f512-u500")
# Peak dense FLOP/s by (device kind substring, dtype), for utilisation; CPUs have no published figure here.
PEAK_FLOPS = {("H100", "bfloat16"): 989e12, ("H100", "float32"): 67e12,
              ("H200", "bfloat16"): 989e12, ("H200", "float32"): 67e12}


def _tiny():
  from jaxtag.core import config as common
  c = common.apply_smoke(common.base_config())   # 1.5-s chunks: the 7-layer waveform front-end's 10 frames
  c.data.generated_n, c.data.generated_clip_seconds = 24, 3.0
  c.model.name, c.model.waveform_scale, c.model.backend_filters, c.model.backend_units = "waveform", 0.125, 16, 16
  c.train.global_batch_size, c.eval.batch_size, c.eval.max_songs = 4, 16, 4
  c.data.num_workers, c.data.read_threads = 0, 1   # no worker processes to start
  return c


def _on_generated(c):
  c.data.dataset, c.data.generated_n, c.data.generated_clip_seconds = "generated", 240, 8.0
  return c


def _won(model_type: str):
  """Won's model on the generated corpus, its clips long enough for the model's input (CNNSA: 15 s)."""
  c = _on_generated(won.get_config(model_type))
  c.data.generated_clip_seconds = max(8.0, c.data.chunk_seconds + 1.0)
  return c


def model_config(name: str, *, dtype: str = "float32", batch: int = 0, cache_dir: str = "", kernels: str = "auto"):
  if name not in MODELS:
    raise ValueError(f"unknown benchmark model {name!r}; valid: {list(MODELS)}")
  c = MODELS[name]()
  c.model.dtype, c.model.kernels = dtype, kernels
  if batch:
    c.train.global_batch_size = batch
  c.data.cache_dir = cache_dir
  return c


def synthetic_step(c, n_tags: int, augment=None):
  """``(jitted train step, state, batch)`` of config ``c`` on the default mesh: one device-resident batch of
  noise and sparse targets, so a timing measures the step alone."""
  import jax
  import numpy as np
  from jaxtag.core import sharding
  from jaxtag.training import step as step_lib, train_state
  mesh = sharding.make_mesh()
  b, n = c.train.global_batch_size, int(round(c.data.chunk_seconds * c.data.sample_rate))
  tx = step_lib.optimizer()
  graphdef, state = train_state.create(c, n_tags, mesh, tx=tx)
  rng = np.random.default_rng(0)
  batch = jax.device_put({"audio": (0.3 * rng.standard_normal((b, n))).astype(np.float32),
                          "targets": (rng.random((b, n_tags)) < 0.1).astype(np.float32)}, sharding.data_sharded(mesh))
  fn = step_lib.jit_train_step(graphdef, tx, mesh, loss_kind=c.train.loss, l2=float(c.train.l2), augment=augment)
  return fn, state, batch


def peak_flops(device_kind: str, dtype: str) -> float | None:
  return next((v for (kind, dt), v in PEAK_FLOPS.items() if kind in device_kind and dt == dtype), None)


def timed(fn, repeats: int) -> list[float]:
  """Wall seconds of ``fn()`` for each of ``repeats`` runs."""
  out = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    out.append(time.perf_counter() - t0)
  return out


def median(xs) -> float:
  return float(statistics.median(xs))


def machine() -> dict:
  import jax
  dev = jax.devices()[0]
  return {"device_kind": dev.device_kind, "platform": dev.platform, "devices": jax.device_count(),
          "cpus": tuning.machine_cpus(), "load_avg_1m": round(os.getloadavg()[0], 1), "jax": jax.__version__}


def report(name: str, rows: list[dict], columns: list[str], json_out: str, settings: dict) -> None:
  """Prints ``rows`` as a table and appends ``{benchmark, time, machine, settings, rows}`` to ``json_out``."""
  widths = [max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns]
  print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
  for r in rows:
    print("  ".join(_fmt(r.get(c)).ljust(w) for c, w in zip(columns, widths)))
  entry = {"benchmark": name, "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "machine": machine(), "settings": settings, "rows": rows}
  if json_out:
    os.makedirs(os.path.dirname(os.path.abspath(json_out)), exist_ok=True)
    with open(json_out, "a") as f:
      f.write(json.dumps(entry) + "\n")


def _fmt(v) -> str:
  if v is None:
    return "-"
  if isinstance(v, float):
    return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
  return str(v)
