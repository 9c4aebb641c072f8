"""Collects ``benchmarks/gpu.sh``'s JSON lines into ``OUT/summary.json`` and prints the headline tables.

``python benchmarks/gpu_summary.py OUT`` | ``python benchmarks/gpu_summary.py --best_batch MODEL train_step.jsonl``
(the second form prints the best float32 step-only batch of MODEL, for the end-to-end run).
"""
from __future__ import annotations

import json
import os
import sys


def read_rows(path: str) -> list[dict]:
  if not os.path.exists(path):
    return []
  rows = []
  for line in open(path):
    if line.strip():
      entry = json.loads(line)
      rows += [dict(r, machine=entry.get("machine"), time=entry.get("time")) for r in entry.get("rows", [])]
  return rows


def best_batch(model: str, path: str, dtype: str = "float32") -> int:
  rows = [r for r in read_rows(path) if r.get("model") == model and r.get("dtype") == dtype and r.get("best")]
  if not rows:
    raise SystemExit(f"no best row for {model} {dtype} in {path}")
  return int(rows[-1]["batch"])


def main(out: str) -> None:
  summary = {name: read_rows(os.path.join(out, f"{name}.jsonl"))
             for name in ("train_step", "input_pipeline", "end_to_end")}
  mpath = os.path.join(out, "machine.json")
  summary["machine"] = json.load(open(mpath)) if os.path.exists(mpath) else {}
  for r in summary["train_step"]:
    r.pop("machine", None)
  with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump(summary, f, indent=1)
  print("| model | dtype | best batch | chunks/s | MFU |\n|---|---|---:|---:|---:|")
  for r in summary["train_step"]:
    if r.get("best"):
      mfu = f"{100 * r['utilisation']:.1f}%" if r.get("utilisation") is not None else "-"
      print(f"| {r['model']} | {r['dtype']} | {r['batch']} | {r['chunks_per_s']:.0f} | {mfu} |")
  for r in summary["train_step"]:
    if "error" in r:
      print(f"(sweep of {r['model']} {r['dtype']} stopped at batch {r['batch']}: {r['error'][:100]})")
  print("\n| pipeline source | what | workers | chunks/s |\n|---|---|---|---:|")
  for r in summary["input_pipeline"]:
    if "chunks_per_s" in r:
      print(f"| {r.get('source')} | {r.get('what', '')} | {r.get('workers', '')} | {r['chunks_per_s']:.0f} |")
  print("\n| end-to-end model | source | batch | chunks/s |\n|---|---|---:|---:|")
  for r in summary["end_to_end"]:
    print(f"| {r['model']} | {r['source']} | {r['batch']} | {r['chunks_per_s']:.0f} |")
  print(f"\nwrote {os.path.join(out, 'summary.json')}")


if __name__ == "__main__":
  if len(sys.argv) == 4 and sys.argv[1] == "--best_batch":
    print(best_batch(sys.argv[2], sys.argv[3]))
  elif len(sys.argv) == 2:
    main(sys.argv[1])
  else:
    raise SystemExit(__doc__)
