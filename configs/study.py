"""The study: {waveform, spectrogram} x nested train sizes x seeds on the rendered corpus (``jaxtag.analyze.study``).

``python -m jaxtag.study --config=configs/study.py --workdir=runs/study``. Every cell is the smoke recipe on
the smoke corpus (600 rendered clips of 6 s: ~480 train / 60 valid / 60 test, artist-disjoint; the
train sizes are nested subsets of the train pool, valid/test fixed), with the paper's shape at CPU size: both
front-ends on the same back-end (F=32, U=64), waveform 7-layer at half the x1 filters (114,528 params with the corpus's 64 tags) vs
spectrogram k=8 (100,064), within 2x. ``configs/study.py:waveform,train_size=120,seed=1`` is one cell's config;
``configs/study.py:tiny`` is the seconds-long version the tests run; ``configs/study.py:testbed`` the CPU
study on the testbed corpus (2,400 clips of 6 s: pool 1,431 / valid 245 / test 724 songs from 159 artists;
sizes 170, 480, all; 3 seeds; early stopping under a 500-step cap); ``configs/study.py:paper`` the
paper-size one of ``launch/study_gpu.sh`` (a 3,000-clip testbed of 10 s, MTT-size models, one H200).
"""
import ml_collections

from configs import smoke
from jaxtag.core import config as config_lib


STUDY_FLAGS = ("tiny", "paper", "testbed", "dry")


def get_config(arg=None):
  items = [a.strip() for a in (arg or "").split(",") if a.strip()]
  args = config_lib.parse_arg(",".join(a for a in items if a not in STUDY_FLAGS))
  tiny, paper, testbed = "tiny" in items, "paper" in items, "testbed" in items
  c = config_lib.base_config()
  c.experiment = "study"
  args["smoke"] = True
  c = smoke.rendered(config_lib.apply_args(c, args, default_frontend="spectrogram"))
  c.model.spectrogram_k = 8         # the CPU-size pair on one F=32/U=64 back-end (counts: docs/results.md)
  c.model.waveform_scale = 0.5      # half the sample-level filters (32..128), so a waveform step costs ~a spectrogram one
  c.train.steps = args.get("steps", 300)   # ~3 min a cell on 2 cores; 12 cells + 3 baselines in ~50 min
  # 477 = the whole train pool of the 600-clip corpus (a size above the pool is a ConfigError)
  c.study = ml_collections.ConfigDict({
      "frontends": ("waveform", "spectrogram"),
      "train_sizes": (120, 240, "all"),   # nested subsets of the train pool; "all" = the whole pool (477 here)
      "seeds": (0, 1),
      "baseline": True,                   # the per-tag GBT once per size
      "min_test_positives": 30,           # a tag is scored only with this many test positives
      "n_boot": 1000,                     # artist-resampling bootstrap replicates for every interval
      "undertrained_fraction": 0.2,       # best step in the last 20 % of the step cap: marked under-trained
  })
  if testbed:   # the measuring instrument on the testbed corpus (visible and log-mel-invisible tag families)
    c.data.update(dataset="testbed", dataset_title="jaxtag testbed corpus", generated_n=2400,
                  generated_clip_seconds=6.0, chunk_seconds=3.0)
    c.train.update(steps=args.get("steps", 500), eval_every=50, checkpoint_every=100, early_stopping_patience=4)
    c.study.update(train_sizes=(170, 480, "all"), seeds=(0, 1, 2))   # "all" = 1,431 songs: 8.4x
  if tiny:   # the bookkeeping test: numpy corpus, 4 steps, one cell (stopped half-way, resumed, then skipped)
    c.data.update(dataset="generated", generated_n=32, generated_clip_seconds=2.0, chunk_seconds=1.0, num_workers=0)
    c.model.spectrogram_k = 4
    c.train.update(steps=args.get("steps", 4), global_batch_size=8, eval_every=1000, checkpoint_every=2,
                   log_every=2, metrics_every=2)
    c.eval.update(batch_size=8, max_songs=4)
    c.study.update(frontends=("spectrogram",), train_sizes=(8,), seeds=(0,), baseline=False, min_test_positives=1,
                   n_boot=50)
  if paper:  # launch/study_gpu.sh: the paper's MTT-size models on one H200 (3-s chunks, F=512/U=500 back-end)
    c.data.update(dataset="testbed", dataset_title="jaxtag testbed corpus", generated_n=3000,
                  generated_clip_seconds=10.0, chunk_seconds=3.0)
    c.model.update(waveform_width=2, waveform_scale=1.0, waveform_layers=7, spectrogram_k=8, backend_filters=512, backend_units=500,
                   width=1.0, bn_momentum=0.99)
    c.train.update(steps=args.get("steps", 1000), global_batch_size=args.get("batch", 64), learning_rate=1e-3,
                   eval_every=100, checkpoint_every=500, log_every=100, early_stopping_patience=4)
    c.eval.batch_size = 256
    c.study.update(train_sizes=(225, 600, "all"), seeds=(0, 1, 2))   # "all": the ~1,800-song pool, 8x
  if "dry" in items:   # launch/study_gpu.sh --dry-run: the same script on CPU, a 40-clip testbed, 2 steps a cell
    c.data.update(dataset="testbed", generated_n=40, generated_clip_seconds=3.0, chunk_seconds=1.5, num_workers=0)
    c.model.update(waveform_width=1, waveform_scale=0.25, waveform_layers=7, spectrogram_k=2, backend_filters=8,
                   backend_units=16, width=0.25)
    c.train.update(steps=args.get("steps", 2), global_batch_size=4, eval_every=2, checkpoint_every=2, log_every=1,
                   metrics_every=1, early_stopping_patience=0)
    c.eval.update(batch_size=8, max_songs=0)
    c.study.update(train_sizes=(8, "all"), seeds=(0,), min_test_positives=1, n_boot=50)
  return c
