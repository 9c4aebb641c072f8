"""Your manifest, starting from musicnn MTT: the path for a user's own tags.

  python -m jaxtag.tools.import_musicnn --weights=../shared/musicnn_ref/MTT_musicnn_weights.npz --out=runs/MTT_musicnn
  python -m jaxtag.main --config=configs/finetune.py --workdir=runs/mine \\
      --config.data.manifest=my_songs.jsonl [--config.data.root=AUDIO_DIR] [--config.init.workdir=runs/MTT_musicnn]

The model section is MTT_musicnn's (``jaxtag.tools.import_musicnn.musicnn_config``): 3-s chunks at 16 kHz, the
float16-rounded log-mel it was trained on. The output layer is rebuilt for the manifest's tags, each tag musicnn
knows keeping its trained row. Defaults for a few hundred to a few thousand songs: every layer trains, the
backbone at a fifth of the head's learning rate, validation every 100 steps, the best checkpoint by validation
ROC-AUC, early stopping after 5 validations without a better one, at most 3,000 steps. ``finetune.py:head`` is
a linear probe instead (only the output layer trains); ``finetune.py:top`` trains the dense block too.
Another source run (e.g. an MSD_vgg import or a run trained here) needs its model settings: the start-up check
names each one that differs, with the flag to set.
"""
from jaxtag.core import config as config_lib

MODES = ("all", "top", "head")


def get_config(arg=None):
  items = [s.strip() for s in (arg or "").split(",") if s.strip()]
  modes = [m for m in items if m in MODES]
  args, c = config_lib.new_config(",".join(i for i in items if i not in MODES), "finetune", "manifest",
                              "your manifest", chunk_seconds=3.0)
  from jaxtag.tools.import_musicnn import musicnn_config
  c.model = musicnn_config("MTT_musicnn").model
  c.data.sample_rate = 16000
  c.init.workdir = "runs/MTT_musicnn"
  c.init.checkpoint = "best"
  t = c.train
  t.trainable = modes[-1] if modes else "all"
  t.learning_rate = 1e-3 if t.trainable == "head" else 5e-4
  t.backbone_lr_scale = 0.2
  t.global_batch_size = 32
  t.steps = 3000
  t.eval_every = 100
  t.checkpoint_every = 100
  t.log_every = 20
  t.best_metric = "roc_auc"
  t.early_stopping_patience = 5
  t.plateau_patience = 2           # halve the LR after 2 validations without a lower loss
  return config_lib.apply_args(c, {**args, "model": c.model.name}, default_frontend=c.model.name)
