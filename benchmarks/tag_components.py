"""Where library tagging's time goes on this machine: decode seconds per file and the model's forward rate at
``jaxtag.serving.predict``'s batch (16) and ``jaxtag.serving.tag``'s (64), on the clips and the run ``tag_library.py`` made.

    PYTHONPATH=$PWD python benchmarks/tag_components.py [--work=/tmp/jaxtag_tag_bench] [--files=8]

The bound it gives: a file of C chunks costs ``decode / workers + C / forward_rate`` seconds when decoding
overlaps the model, and ``decode + ceil(C / 16) * 16 / forward_rate_16`` in predict (serial, padded batches).
Raw rows: benchmarks/results/tag_components.jsonl.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import time

import numpy as np


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--work", default="/tmp/jaxtag_tag_bench")
  ap.add_argument("--files", type=int, default=8)
  ap.add_argument("--repeats", type=int, default=3)
  ap.add_argument("--json_out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                                     "tag_components.jsonl"))
  args = ap.parse_args()
  import jax
  from jaxtag.serving import inference
  from jaxtag.data import decode
  clips = sorted(glob.glob(os.path.join(args.work, "clips", "*.mp3")))[:args.files]
  contract = inference.RunModel(os.path.join(args.work, "MTT_musicnn")).contract
  t0 = time.perf_counter()
  chunks = [contract.model_inputs(decode.load_audio_stream(p, contract.sample_rate)[0], contract.sample_rate) for p in clips]
  decode_s = (time.perf_counter() - t0) / len(clips)
  row = {"files": len(clips), "decode_s_per_file": decode_s, "chunks_per_file": float(np.mean([len(c) for c in chunks])),
         "chunk_seconds": contract.chunk / contract.sample_rate, "load_before": os.getloadavg()[0],
         "devices": jax.device_count()}
  x = np.concatenate(chunks)
  for batch in (16, 64):
    model = inference.RunModel(os.path.join(args.work, "MTT_musicnn"), batch=batch)
    xb = np.resize(x, (model.batch, x.shape[1]))
    model(xb)   # compile
    times = []
    for _ in range(args.repeats):
      t0 = time.perf_counter()
      model(xb)   # probabilities back on the host
      times.append(time.perf_counter() - t0)
    row[f"forward_chunks_per_s_b{batch}"] = batch / float(np.median(times))
  c = row["chunks_per_file"]
  row["bound_tag_files_per_s"] = 1 / (decode_s / os.cpu_count() + c / row["forward_chunks_per_s_b64"])
  row["bound_predict_files_per_s"] = 1 / (decode_s + np.ceil(c / 16) * 16 / row["forward_chunks_per_s_b16"])
  row["load_after"] = os.getloadavg()[0]
  print(json.dumps(row, indent=1))
  with open(args.json_out, "a") as f:
    f.write(json.dumps({"benchmark": "tag_components", "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        "row": row}) + "\n")


if __name__ == "__main__":
  main()
