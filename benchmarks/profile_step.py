"""Where a step's time goes on XLA:CPU: a jax.profiler trace of the train (or eval) step of the peer models,
reduced to self time per HLO op and per op kind (convolution, dot, fft, reduce-window, fusion kinds, ...).

``python benchmarks/profile_step.py --models spec-k8-f64-u200,wave-x1-f512-u500 --mode train --batch 32
[--steps 3] [--trace_dir /tmp/trace] [--top 15] [--json_out /tmp/profile.jsonl]``

Why self time: XLA:CPU's thunk executor records one trace event per thunk on the thread that ran it, and a
thread that waits for a dependency runs other thunks inline, so events nest; a parent's children are
subtracted. The sum over all XLA threads is CPU time (on 2 threads it is ~2x the wall time of the step).
Each op is labelled with its opcode and, for fusions, with the heavy op inside it (convolution, dot, ...),
plus the JAX source op (``metadata op_name``) so a row names the model layer that costs it.
"""
from __future__ import annotations

import argparse
import collections
import datetime
import functools
import glob
import json
import os
import re
import tempfile

import jax
import numpy as np

from jaxtag.models import registry
from jaxtag.core import sharding
from jaxtag.training import step as step_lib

PEER = {  # the peer's model names -> jaxtag config getters (as the peer's bench_jaxtag.py)
    "spec-k8-f64-u200": ("mtt", "spectrogram,small"),
    "spec-k8-f512-u500": ("mtt", "spectrogram"),
    "spec-k16-f512-u500": ("msd", "spectrogram"),
    "wave-x1-f512-u500": ("msd", "waveform"),
    "wave-x2-f64-u200": ("mtt", "waveform,small"),
    "wave-x4-f512-u500": ("mtt", "waveform"),
    "smoke": ("smoke", ""),                       # README command 1's model (configs/smoke.py)
    "smoke-waveform": ("smoke", "waveform"),
}
HEAVY = ("convolution", "dot", "fft", "select-and-scatter", "reduce-window", "scatter", "gather", "reduce",
         "custom-call", "sort")
_INSTR = re.compile(r"^\s*(?:ROOT )?%?([\w.\-]+) = .*? ([a-z][a-z\-]*)\((.*)$")


def peer_config(name: str):
  import importlib
  if name not in PEER:
    raise SystemExit(f"unknown model {name!r}; valid: {', '.join(PEER)}")
  mod, arg = PEER[name]
  return importlib.import_module(f"configs.{mod}").get_config(arg or None)


def hlo_labels(hlo_text: str) -> dict[str, tuple[str, str]]:
  """instruction name -> (kind, jax op_name) from compiled HLO text; fusions take the heaviest inner op."""
  comps, cur, labels = {}, None, {}
  for line in hlo_text.splitlines():
    if line.rstrip().endswith("{") and "=" not in line.split("{")[0].split("(")[0]:
      cur = line.split()[0].lstrip("%") if not line.startswith("ENTRY") else line.split()[1].lstrip("%")
      comps[cur] = []
      continue
    m = _INSTR.match(line)
    if m and cur is not None:
      name, op, rest = m.groups()
      meta = re.search(r'op_name="([^"]*)"', rest)
      called = re.findall(r"calls=%?([\w.\-]+)", rest)
      comps[cur].append((name, op, meta.group(1) if meta else "", called))
  def inner_kind(comp, depth=0):
    ops = [(op, meta) for _, op, meta, _ in comps.get(comp, [])]
    for h in HEAVY:
      for op, meta in ops:
        if op == h:
          return h, meta
    for _, op, _, called in comps.get(comp, []):
      for c in called:
        if depth < 3:
          k = inner_kind(c, depth + 1)
          if k[0] != "elementwise":
            return k
    return "elementwise", next((m for _, m in ops if m), "")
  for comp, instrs in comps.items():
    for name, op, meta, called in instrs:
      if op == "fusion" and called:
        kind, inner_meta = inner_kind(called[0])
        labels[name] = (f"fusion({kind})", inner_meta or meta)
      else:
        labels[name] = (op, meta)
  return labels


def self_times(xspace_path: str) -> collections.Counter:
  """Self time (ns) per thunk name, summed over every XLA thread of the trace."""
  pd = jax.profiler.ProfileData.from_file(xspace_path)
  out = collections.Counter()
  for plane in pd.planes:
    for line in plane.lines:
      if "XLA" not in line.name:
        continue
      evs = sorted(((e.start_ns, e.duration_ns, e.name) for e in line.events
                    if not e.name.startswith(("ThunkExecutor", "ThreadpoolListener", "end: "))),
                   key=lambda e: (e[0], -e[1]))
      stack = []   # [end, name, child_ns]
      def close(upto):
        while stack and stack[-1][0] <= upto:
          end, name, child, dur = stack.pop()
          out[name] += dur - child
          if stack:
            stack[-1][2] += dur
      for start, dur, name in evs:
        close(start)
        stack.append([start + dur, name, 0, dur])
      close(float("inf"))
  return out


def build(name: str, mode: str, batch: int, dtype: str):
  c = peer_config(name)
  c.model.dtype = dtype
  mesh = sharding.make_mesh()
  n = int(round(c.data.chunk_seconds * c.data.sample_rate))
  graphdef, params, rest = step_lib.split_model(registry.new_model(c, 50))
  rng = np.random.default_rng(0)
  x = jax.device_put((0.1 * rng.standard_normal((batch, n))).astype(np.float32), sharding.data_sharded(mesh))
  y = jax.device_put((rng.random((batch, 50)) < 0.5).astype(np.float32), sharding.data_sharded(mesh))
  if mode == "train":
    tx = step_lib.optimizer()
    state = jax.device_put(step_lib.init_state(params, rest, tx), sharding.replicated(mesh))
    fn = step_lib.jit_train_step(graphdef, tx, mesh, loss_kind="bce", l2=float(c.train.l2))
    lr = np.float32(1e-3)
    hlo = fn.lower(state, {"audio": x, "targets": y}, lr).compile().as_text()
    holder = {"s": state}
    def one():
      holder["s"], _ = fn(holder["s"], {"audio": x, "targets": y}, lr)
      jax.block_until_ready(holder["s"])
  else:
    f = jax.jit(functools.partial(step_lib.eval_logits, graphdef=graphdef))
    hlo = f.lower(params, rest, x).compile().as_text()
    def one():
      jax.block_until_ready(f(params, rest, x))
  return one, hlo


def profile(name: str, mode: str, batch: int, steps: int, trace_dir: str, dtype: str = "float32") -> dict:
  import time
  one, hlo = build(name, mode, batch, dtype)
  one(); one()   # compile + allocator warm-up
  d = os.path.join(trace_dir, f"{name}-{mode}")
  jax.profiler.start_trace(d)
  t0 = time.perf_counter()
  for _ in range(steps):
    one()
  wall = (time.perf_counter() - t0) / steps
  jax.profiler.stop_trace()
  path = sorted(glob.glob(os.path.join(d, "**", "*.xplane.pb"), recursive=True))[-1]
  per_op = self_times(path)
  labels = hlo_labels(hlo)
  by_kind, rows = collections.Counter(), []
  for op, ns in per_op.most_common():
    kind, meta = labels.get(op, ("?", ""))
    by_kind[kind] += ns
    rows.append({"op": op, "kind": kind, "ms_per_step": ns / 1e6 / steps, "jax_op": meta[-120:]})
  total = sum(per_op.values()) / 1e6 / steps
  return {"model": name, "mode": mode, "batch": batch, "dtype": dtype, "steps": steps,
          "wall_ms_per_step": wall * 1e3, "cpu_ms_per_step": total,
          "by_kind": {k: v / 1e6 / steps for k, v in by_kind.most_common()}, "top_ops": rows[:40],
          "trace": path, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
          "load_avg": os.getloadavg()[0], "jax": jax.__version__}


def print_report(r: dict, top: int):
  print(f"\n## {r['model']} {r['mode']} batch {r['batch']} {r['dtype']}: wall {r['wall_ms_per_step']:.0f} ms/step,"
        f" XLA CPU time {r['cpu_ms_per_step']:.0f} ms/step (load {r['load_avg']:.2f})")
  print("| kind | ms/step (CPU) | share |\n|---|---:|---:|")
  for k, v in r["by_kind"].items():
    print(f"| {k} | {v:.1f} | {100 * v / r['cpu_ms_per_step']:.1f}% |")
  print("\n| op | kind | ms/step | jax op |\n|---|---|---:|---|")
  for row in r["top_ops"][:top]:
    print(f"| {row['op']} | {row['kind']} | {row['ms_per_step']:.1f} | {row['jax_op'][-70:]} |")


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--models", default="spec-k8-f64-u200")
  ap.add_argument("--mode", default="train", choices=["train", "infer"])
  ap.add_argument("--batch", type=int, default=32)
  ap.add_argument("--steps", type=int, default=3)
  ap.add_argument("--dtype", default="float32")
  ap.add_argument("--top", type=int, default=15)
  ap.add_argument("--trace_dir", default="")
  ap.add_argument("--json_out", default="")
  a = ap.parse_args()
  trace_dir = a.trace_dir or tempfile.mkdtemp(prefix="jaxtag-profile-")
  for name in a.models.split(","):
    r = profile(name, a.mode, a.batch, a.steps, trace_dir, a.dtype)
    print_report(r, a.top)
    if a.json_out:
      with open(a.json_out, "a") as f:
        f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
  main()
