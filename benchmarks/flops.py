"""FLOPs per chunk of the paper's models, from XLA's cost analysis: the numerator of every scale estimate.

``python benchmarks/flops.py [--batch=1] [--out=benchmarks/flops.jsonl] [--only=private_waveform,...]``
compiles, on whatever backend is present (CPU is fine: the HLO FLOP count does not depend on the chip),
the forward pass (inference) and the full train step (forward, backward, Adam) of each registered paper
model at ``--batch`` chunks, prints a table and appends one JSON record per model to ``--out``. The train
step's count is what a training chunk costs; step time on a chip is ``batch * flops / (peak * MFU)``.
``train_temp_mb_per_chunk`` (XLA's temporary buffers of the train step, on this backend) bounds the
per-device batch that fits in accelerator memory.
"""
from __future__ import annotations

import argparse
import functools
import json
import platform
import time

import jax
import numpy as np

from jaxtag.core import sharding
from jaxtag.training import train_state
from jaxtag.training import step as step_lib

# name -> (config module, config arg): the paper's models as jaxtag registers them.
MODELS = {
    "private_waveform": ("configs.private_1m", "waveform"),        # 9-layer x1, 15 s, 5.48M params
    "private_spectrogram": ("configs.private_1m", "spectrogram"),  # k16, F512, U500, 15 s, 5.93M
    "mtt_waveform": ("configs.mtt", "waveform"),                   # x4, 3 s, 11.8M
    "mtt_spectrogram": ("configs.mtt", "spectrogram"),             # k8, 3 s, 5.07M
    "msd_waveform": ("configs.msd", "waveform"),                   # x1 7-layer, 3 s, 5.38M
    "msd_spectrogram": ("configs.msd", "spectrogram"),             # k16, 3 s, 5.93M
}
N_TAGS = 50


def _flops(compiled) -> float:
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost["flops"])


def measure(name: str, batch: int) -> dict:
  import importlib
  module, arg = MODELS[name]
  config = importlib.import_module(module).get_config(arg)
  tx = step_lib.optimizer()
  graphdef = train_state.graphdef(config, N_TAGS)
  state = train_state.abstract(config, N_TAGS, sharding.make_mesh(), tx=tx)   # shapes only: nothing allocated
  params, rest = state["params"], state["rest"]
  n = int(round(config.data.chunk_seconds * config.data.sample_rate))
  audio = jax.ShapeDtypeStruct((batch, n), np.float32)
  targets = jax.ShapeDtypeStruct((batch, N_TAGS), np.float32)
  t0 = time.perf_counter()
  fwd = jax.jit(functools.partial(step_lib.eval_logits, graphdef=graphdef)).lower(params, rest, audio).compile()
  train = jax.jit(functools.partial(step_lib.train_step, graphdef=graphdef, tx=tx, loss_kind=config.train.loss,
                                    l2=float(config.train.l2)))
  train = train.lower(state, {"audio": audio, "targets": targets}, np.float32(1e-3)).compile()
  n_params = sum(int(x.size) for x in jax.tree.leaves(params))
  return {"model": name, "config": f"{module.replace('.', '/')}.py:{arg}", "chunk_seconds": config.data.chunk_seconds,
          "params": n_params, "batch": batch, "forward_gflops_per_chunk": _flops(fwd) / batch / 1e9,
          "train_gflops_per_chunk": _flops(train) / batch / 1e9,
          "train_temp_mb_per_chunk": train.memory_analysis().temp_size_in_bytes / batch / 2**20, "compile_s": round(time.perf_counter() - t0, 1),
          "backend": jax.default_backend(), "jax": jax.__version__, "host": platform.node()}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=1)
  parser.add_argument("--out", default="benchmarks/flops.jsonl")
  parser.add_argument("--only", default=",".join(MODELS), help="comma-separated subset of " + ", ".join(MODELS))
  args = parser.parse_args()
  rows = [measure(name, args.batch) for name in args.only.split(",")]
  print(f"{'model':22s} {'chunk':>6s} {'params':>10s} {'fwd GFLOP/chunk':>16s} {'train GFLOP/chunk':>18s} "
        f"{'ratio':>6s} {'train MB/chunk':>15s}")
  for r in rows:
    print(f"{r['model']:22s} {r['chunk_seconds']:5.1f}s {r['params']:10,d} {r['forward_gflops_per_chunk']:16.2f} "
          f"{r['train_gflops_per_chunk']:18.2f} {r['train_gflops_per_chunk'] / r['forward_gflops_per_chunk']:6.2f} "
          f"{r['train_temp_mb_per_chunk']:15.0f}")
  with open(args.out, "a") as f:
    for r in rows:
      f.write(json.dumps({**r, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}) + "\n")


if __name__ == "__main__":
  main()
