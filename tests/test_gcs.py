"""``gs://`` end to end against a real storage server (``gcs_emulator``): a run whose workdir, manifest and audio
are in a bucket writes its checkpoints, metrics and TensorBoard events there; SIGTERM, then a resume from the
bucket that trains the exact next batches; a corrupt newest checkpoint in the bucket falls back; ``evaluate``
and ``tag`` read from and write to the bucket.

One tiny corpus is uploaded once; one uninterrupted run is the reference the others are compared with.
"""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import gcs_emulator
from conftest import ROOT
from test_train import TINY, final_state

pytestmark = pytest.mark.gcs

BUCKET = gcs_emulator.BUCKET
GS = f"gs://{BUCKET}"
# The tiny smoke run of test_train, its data read from the bucket's manifest instead of the generated corpus.
DATA = [a for a in TINY if not a.startswith(("--config.data.dataset", "--config.data.generated"))]
RUN = [*DATA, "--config.data.dataset=manifest", f"--config.data.manifest={GS}/corpus/manifest.jsonl",
       f"--config.data.tags_file={GS}/corpus/tags.txt", "--config.train.steps=6", "--config.train.eval_every=3"]


def gs_storage():
  from google.cloud import storage
  return storage.Client().bucket(BUCKET)


def objects(prefix: str) -> list[str]:
  """Object names under ``prefix`` as the server lists them (no client-side listing cache)."""
  return sorted(b.name for b in gs_storage().list_blobs(prefix=prefix))


def faults(workdir, record, *args, check=True, popen=False):
  cmd = [sys.executable, "-m", "tests.faults", f"--config={ROOT}/configs/smoke.py", f"--workdir={workdir}", *RUN,
         f"--record_batches={record}", *args]
  if popen:   # stderr to a file: gcsfs warns at every client it makes, and an unread pipe would fill and block
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(f"{record}.log", "w"))
  proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
  if check and proc.returncode:
    raise AssertionError(f"training on {workdir} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
  return proc


def batches(path) -> dict[int, str]:
  return {int(s): h for s, h in (line.split() for line in open(path).read().splitlines())}


@pytest.fixture(scope="module")
def bucket(tmp_path_factory, corpus_cache):
  """The server, with the generated corpus (audio, manifest, tags) uploaded to ``gs://BUCKET/corpus``."""
  from jaxtag.data import generate
  manifest = generate.ensure_corpus(32, 0, 3.0, "flac", corpus_cache)
  corpus = os.path.dirname(manifest)
  with gcs_emulator.running(str(tmp_path_factory.mktemp("emulator") / "server.log")):
    b = gs_storage()
    for folder, _, files in os.walk(corpus):
      for name in files:
        local = os.path.join(folder, name)
        b.blob(f"corpus/{os.path.relpath(local, corpus)}").upload_from_filename(local)
    yield corpus


@pytest.fixture(scope="module")
def reference(bucket, tmp_path_factory):
  """An uninterrupted 6-step run in the bucket, checkpoints at 3 and 6; its batches recorded."""
  record = tmp_path_factory.mktemp("reference") / "batches.txt"
  faults(f"{GS}/runs/ref", record, "--config.train.checkpoint_every=3")
  return f"{GS}/runs/ref", batches(record)


def test_a_run_in_the_bucket_writes_checkpoints_metrics_and_events_there(reference, bucket):
  workdir, trained = reference
  assert sorted(trained) == list(range(6))
  names = objects("runs/ref/")
  for step in (3, 6):
    assert any(n.startswith(f"runs/ref/checkpoints/{step}/state/") for n in names), names
  assert {"runs/ref/config.json", "runs/ref/tags.json", "runs/ref/metrics.jsonl", "runs/ref/summary.json"} <= set(names)
  events = [n for n in names if n.startswith("runs/ref/tensorboard/events.out.tfevents.")]
  assert events and gs_storage().get_blob(events[0]).size > 100
  from jaxtag.training import metrics
  records = metrics.read_jsonl(f"{workdir}/metrics.jsonl")
  assert [r["step"] for r in records if "val/roc_auc" in r] == [3, 6]
  assert any("loss" in r for r in records)


def test_sigterm_then_resume_from_the_bucket_trains_the_exact_next_batches(reference, tmp_path):
  ref_workdir, ref_batches = reference
  workdir = f"{GS}/runs/term"
  first = faults(workdir, tmp_path / "first.txt", "--config.train.checkpoint_every=100", "--hold_at=2", popen=True)
  deadline = time.monotonic() + 600
  while not os.path.exists(tmp_path / "first.txt.held"):
    assert first.poll() is None and time.monotonic() < deadline, (tmp_path / "first.txt.log").read_text()[-3000:]
    time.sleep(0.2)
  first.send_signal(signal.SIGTERM)
  first.wait(timeout=300)
  err = (tmp_path / "first.txt.log").read_text()
  assert first.returncode == 0 and "saved step 3" in err, err[-3000:]
  assert {n.split("/")[3] for n in objects("runs/term/checkpoints/")} == {"3"}
  resumed = faults(workdir, tmp_path / "resumed.txt", "--config.train.checkpoint_every=100")
  assert f"resumed from {workdir}/checkpoints/3" in resumed.stderr, resumed.stderr[-3000:]
  assert batches(tmp_path / "first.txt") == {s: ref_batches[s] for s in range(3)}
  assert batches(tmp_path / "resumed.txt") == {s: ref_batches[s] for s in range(3, 6)}
  step_a, leaves_a = final_state(ref_workdir)
  step_b, leaves_b = final_state(workdir)
  assert step_a == step_b == 6 and len(leaves_a) == len(leaves_b)
  for a, b in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(a, b)


def test_a_corrupt_newest_checkpoint_in_the_bucket_falls_back(reference, tmp_path):
  """A copy of the reference run whose step-6 data files are cut to half (as test_checkpoint_policy does
  locally) resumes from step 3 and trains on to step 8."""
  b = gs_storage()
  for blob in b.list_blobs(prefix="runs/ref/"):
    b.copy_blob(blob, b, blob.name.replace("runs/ref/", "runs/corrupt/", 1))
  data = [n for n in objects("runs/corrupt/checkpoints/6/state/") if "/d/" in n and "ocdbt.process_" in n]
  assert data
  for name in data:
    blob = b.blob(name)
    content = blob.download_as_bytes()
    blob.upload_from_string(content[:len(content) // 2])
  workdir = f"{GS}/runs/corrupt"
  proc = faults(workdir, tmp_path / "b.txt", "--config.train.checkpoint_every=3", "--config.train.steps=8")
  warnings = [line for line in proc.stderr.splitlines() if "cannot be restored" in line]
  assert len(warnings) == 1 and "checkpoint step 6" in warnings[0], proc.stderr[-3000:]
  assert f"resumed from {workdir}/checkpoints/3" in proc.stderr
  names = objects("runs/corrupt/checkpoints/")
  assert any(n.startswith("runs/corrupt/checkpoints/6.corrupt/") for n in names)
  assert sorted(batches(tmp_path / "b.txt")) == [3, 4, 5, 6, 7]
  assert final_state(workdir)[0] == 8


def test_evaluate_and_tag_read_from_and_write_to_the_bucket(reference, bucket):
  workdir, _ = reference
  proc = subprocess.run([sys.executable, "-m", "jaxtag.evaluate", f"--workdir={workdir}", "--split=test", "--json"],
                        cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  printed = json.loads(proc.stdout.strip().splitlines()[-1])
  names = set(objects("runs/ref/report/"))
  for name in ("eval_test.json", "predictions_test.npz", "per_tag_test.csv", "per_tag_test.md", "report_test.md",
               "per_tag_vs_prevalence_test.png", "pr_curves_test.png"):
    assert f"runs/ref/report/{name}" in names, names
  from jaxtag.evaluation import report
  assert report.read_json(f"{workdir}/report/eval_test.json")["roc_auc"] == printed["roc_auc"]
  saved = report.load_predictions(f"{workdir}/report/predictions_test.npz")
  assert saved.scores.shape == (printed["n_songs"], len(saved.tags)) and 0 < printed["n_tags"] <= len(saved.tags)
  assert gs_storage().get_blob("runs/ref/report/pr_curves_test.png").download_as_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

  out = f"{GS}/tags"
  proc = subprocess.run([sys.executable, "-m", "jaxtag.tag", f"--workdir={workdir}", f"--input={GS}/corpus/manifest.jsonl",
                         f"--out={out}", "--workers=0", "--shard_size=10"], cwd=ROOT, capture_output=True, text=True,
                        timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  from jaxtag.serving import tag_shards as shards
  rows = shards.read_rows(out)
  corpus = [json.loads(line) for line in open(os.path.join(bucket, "manifest.jsonl"))]
  assert sorted(r["path"] for r in rows) == sorted(f"{GS}/corpus/{c['path']}" for c in corpus)
  summary = json.loads(gs_storage().get_blob("tags/summary.json").download_as_bytes())
  assert summary["tagged"] == len(corpus) and summary["failed"] == 0 and summary["shards"] == 4
