"""Starting a run from another (``init.workdir``): imported MTT musicnn fine-tuned on a generated-corpus manifest
whose vocabulary overlaps MTT's in part. Step 0 reproduces the source's outputs on the shared tags; after N steps
the fine-tuned model beats the same config from scratch; ``trainable=head`` leaves every other leaf bitwise
equal; a config that contradicts the source fails before any data work."""
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from conftest import ROOT, SHARED
from jaxtag.training import checkpoint, transfer, trainable
from jaxtag.training import step as step_lib

WEIGHTS = os.path.join(SHARED, "musicnn_ref", "MTT_musicnn_weights.npz")
TAGS = ["drums", "rock", "piano", "classical", "electronic", "vocal", "minor", "bass"]   # 6 MTT tags, 2 new
SHARED_TAGS = 6
pytestmark = pytest.mark.skipif(not os.path.exists(WEIGHTS), reason="needs ../shared/musicnn_ref")


@pytest.fixture(scope="module")
def source(tmp_path_factory):
  from jaxtag.tools import import_musicnn
  out = str(tmp_path_factory.mktemp("src") / "MTT_musicnn")
  import_musicnn.import_musicnn(WEIGHTS, out)
  return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, corpus_cache):
  """A user's manifest: the generated corpus's 3-s clips (one chunk per song) labelled with a vocabulary that
  overlaps MTT's in part (the corpus's other tags dropped), and its tag file."""
  from jaxtag.data import generate
  source = generate.ensure_corpus(160, 0, 3.0, "flac", corpus_cache)
  out = tmp_path_factory.mktemp("mine")
  with open(source) as f, open(out / "manifest.jsonl", "w") as g:
    for line in f:
      row = json.loads(line)
      row["path"] = os.path.join(os.path.dirname(source), row["path"])
      row["tags"] = [t for t in row["tags"] if t in TAGS]
      g.write(json.dumps(row) + "\n")
  (out / "tags.txt").write_text("\n".join(TAGS) + "\n")
  return str(out / "manifest.jsonl"), str(out / "tags.txt")


def _finetune_config(source, **train):
  from configs import finetune
  c = finetune.get_config(None)
  c.init.workdir = source
  c.train.update(train)
  return c


def _flat(tree) -> dict:
  return {"/".join(str(getattr(k, "key", getattr(k, "name", k))) for k in p): np.asarray(x)
          for p, x in jax.tree_util.tree_flatten_with_path(tree)[0] if "rngs" not in str(p)}


def test_step_zero_outputs_equal_the_source_on_shared_tags(source):
  config = _finetune_config(source)
  model = checkpoint.new_model(config, len(TAGS), seed=3)
  graphdef, params, rest = step_lib.split_model(model)
  fresh_head = np.asarray(params["out"]["kernel"][...])
  params, rest, info = transfer.apply(params, rest, config, TAGS)
  assert (info["head"], info["shared_tags"]) == ("rebuilt", SHARED_TAGS)
  _, src_tags, src_model, _ = checkpoint.load_for_inference(source)
  audio = np.random.default_rng(0).standard_normal((2, 48000)).astype(np.float32) * 0.1
  mine = np.asarray(step_lib.eval_logits(params, rest, audio, graphdef=graphdef))
  theirs = np.asarray(src_model(audio, train=False))
  cols = [src_tags.index(t) for t in TAGS[:SHARED_TAGS]]
  np.testing.assert_allclose(mine[:, :SHARED_TAGS], theirs[:, cols], rtol=1e-5, atol=1e-5)
  # the two new tags keep the fresh initialisation of the new run
  np.testing.assert_array_equal(np.asarray(params["out"]["kernel"][...])[:, SHARED_TAGS:], fresh_head[:, SHARED_TAGS:])


def test_mismatched_model_fails_before_any_data_work(source, tmp_path):
  from jaxtag.training import train
  config = _finetune_config(source)
  config.model.backend_units, config.data.chunk_seconds = 500, 15.0
  config.data.manifest = str(tmp_path / "no_such_manifest.jsonl")   # reading it would fail differently
  with pytest.raises(ValueError) as err:
    train.train_and_evaluate(config, str(tmp_path / "run"))
  msg = str(err.value)
  assert "does not match init.workdir" in msg and "model.backend_units: config 500, source 200" in msg, msg
  assert "data.chunk_seconds: config 15.0, source 3.0" in msg and "--config.model.backend_units=200" in msg
  assert not (tmp_path / "run" / "checkpoints").exists()


def test_the_head_tracks_shared_rows():
  fresh = {"out": {"kernel": np.zeros((2, 3), np.float32), "bias": np.zeros(3, np.float32)},
           "dense": {"kernel": np.zeros((2, 2), np.float32)}}
  src = {"out": {"kernel": np.arange(8, dtype=np.float32).reshape(2, 4), "bias": np.arange(4, dtype=np.float32)},
         "dense": {"kernel": np.ones((2, 2), np.float32)}}
  out = transfer.merge_trees(fresh, src, ["a", "b", "c", "d"], ["d", "x", "b"])
  np.testing.assert_array_equal(out["out"]["kernel"], [[3, 0, 1], [7, 0, 5]])
  np.testing.assert_array_equal(out["out"]["bias"], [3, 0, 1])
  np.testing.assert_array_equal(out["dense"]["kernel"], np.ones((2, 2)))
  same = transfer.merge_trees(fresh | {"out": src["out"]}, src, list("abcd"), list("abcd"))
  np.testing.assert_array_equal(same["out"]["kernel"], src["out"]["kernel"])


RUN = ["--config.data.num_workers=0", "--config.data.read_threads=1", "--config.train.global_batch_size=8",
       "--config.train.steps=10", "--config.train.eval_every=10", "--config.train.checkpoint_every=10",
       "--config.train.log_every=5", "--config.train.metrics_every=5", "--config.eval.split=test",
       "--config.eval.batch_size=8", "--config.train.trainable=head", "--config.train.learning_rate=0.003"]


def _main(workdir, manifest, tags, *extra):
  env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=os.path.join(os.path.dirname(str(workdir)), "xla_cache"),
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")   # the scratch run reuses the fine-tune's executables
  cmd = [sys.executable, "-m", "jaxtag.main", f"--config={ROOT}/configs/finetune.py", f"--workdir={workdir}",
         f"--config.data.manifest={manifest}", f"--config.data.tags_file={tags}", *RUN, *extra]
  proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1200, env=env)
  assert proc.returncode == 0, proc.stderr[-4000:]
  return json.loads((workdir / "summary.json").read_text())


def test_finetune_beats_scratch_and_head_training_keeps_the_rest(source, corpus, tmp_path):
  manifest, tags = corpus
  tuned = _main(tmp_path / "tuned", manifest, tags, f"--config.init.workdir={source}")
  scratch = _main(tmp_path / "scratch", manifest, tags, "--config.init.workdir=")
  t_auc, s_auc = tuned["validation"]["roc_auc"], scratch["validation"]["roc_auc"]
  print(f"test ROC-AUC after 10 head steps: fine-tuned {t_auc:.4f}, scratch {s_auc:.4f}")
  assert t_auc > s_auc + 0.05, (t_auc, s_auc)
  init = json.loads((tmp_path / "tuned" / "init.json").read_text())
  assert (init["head"], init["shared_tags"]) == ("rebuilt", SHARED_TAGS)
  # trainable=head: every non-head leaf of the trained model, BN statistics included, is the source's, bitwise
  _, _, src_model, _ = checkpoint.load_for_inference(source)
  _, _, tuned_model, step = checkpoint.load_for_inference(str(tmp_path / "tuned"), "latest")
  assert step == 10
  src, out = [_flat(step_lib.split_model(m)[1:]) for m in (src_model, tuned_model)]
  body = [k for k in src if trainable.group(k.split("/")[1:]) != "head"]
  assert len(body) > 50
  for k in body:
    np.testing.assert_array_equal(out[k], src[k], err_msg=k)
  cols = [json.loads((open(os.path.join(source, "tags.json")).read())).index(t) for t in TAGS[:SHARED_TAGS]]
  assert not np.array_equal(out["[0]/out/kernel/value"][:, :SHARED_TAGS], src["[0]/out/kernel/value"][:, cols])


def test_finetune_config_is_musicnn_mtt():
  from configs import finetune
  from jaxtag.tools.import_musicnn import musicnn_config
  c = finetune.get_config("head,steps=50")
  assert transfer.mismatches(c, musicnn_config("MTT_musicnn")) == []
  assert (c.train.trainable, c.train.steps, c.train.best_metric, c.data.chunk_seconds) == ("head", 50, "roc_auc", 3.0)
  assert c.train.early_stopping_patience > 0 and finetune.get_config(None).train.trainable == "all"


def test_resuming_a_finetune_run_never_reads_the_source_again(tmp_path, corpus_cache):
  """A tiny source (smoke model, other vocabulary); the fine-tune run resumes after its source is deleted."""
  import shutil
  from configs import smoke
  from jaxtag.data import generate
  from test_train import run_main
  config = smoke.get_config(None)
  config.data.chunk_seconds = 1.0
  src = tmp_path / "src"
  checkpoint.save_inference_checkpoint(str(src), config, checkpoint.new_model(config, 10, seed=5),
                                       list(generate.TAGS[:10]))
  work = tmp_path / "tuned"
  extra = [f"--config.init.workdir={src}", "--config.train.trainable=top", "--config.train.checkpoint_every=2"]
  run_main(str(work), corpus_cache, "--config.train.steps=2", *extra)
  init = json.loads((work / "init.json").read_text())
  assert (init["head"], init["shared_tags"], init["tags"]) == ("rebuilt", 10, len(generate.TAGS))
  shutil.rmtree(src)
  run_main(str(work), corpus_cache, "--config.train.steps=4", *extra)
  assert json.loads((work / "summary.json").read_text())["step"] == 4
  assert json.loads((work / "init.json").read_text()) == init
