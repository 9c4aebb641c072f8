"""Shared defaults and the big_vision-style argument parser for every jaxtag config.

Each config file exposes ``get_config(arg)``; ``arg`` is the text after ``:`` in
``--config=configs/mtt.py:spectrogram,small``: comma-separated flags (``waveform``, ``spectrogram``,
``small``, ``smoke``) and ``key=value`` pairs (``model=vgg``, ``steps=500``). Every key of the
ConfigDict lives here, once; config files only override values. Unknown arguments fail at once and
list the valid ones. The valid values of every choice-valued key are declared once, in ``jaxtag.core.choices``
(named beside each default below), and checked there at start.
"""
from __future__ import annotations

import ml_collections

FLAGS = ("waveform", "spectrogram", "small", "smoke")
KEYVALUES = {"model": str, "steps": int, "batch": int, "seed": int, "train_size": int, "dtype": str}


def parse_arg(arg: str | None) -> dict:
  """Parses ``"spectrogram,small,model=vgg"`` into ``{"spectrogram": True, "small": True, "model": "vgg"}``."""
  out: dict = {}
  for item in filter(None, (s.strip() for s in (arg or "").split(","))):
    if "=" in item:
      key, value = item.split("=", 1)
      if key not in KEYVALUES:
        raise ValueError(f"unknown config argument {key!r}; valid keys: {sorted(KEYVALUES)} "
                         f"and flags: {list(FLAGS)}")
      out[key] = KEYVALUES[key](value)
    elif item in FLAGS:
      out[item] = True
    else:
      raise ValueError(f"unknown config argument {item!r}; valid flags: {list(FLAGS)}, "
                       f"valid keys: {sorted(KEYVALUES)} (as key=value)")
  if out.get("waveform") and out.get("spectrogram"):
    raise ValueError("choose one front-end: 'waveform' or 'spectrogram', not both")
  return out


def base_config() -> ml_collections.ConfigDict:
  """Every key jaxtag reads, with the paper's defaults (Pons et al. 2018; musicnn-training)."""
  c = ml_collections.ConfigDict()
  c.experiment = "base"
  c.seed = 0

  # ---- data: audio file -> chunk source -> grain pipeline -------------------------------------
  d = c.data = ml_collections.ConfigDict()
  d.dataset = "generated"          # choices.DATASETS
  d.dataset_title = ""             # shown in reports, e.g. "MagnaTagATune"
  d.sample_rate = 16000
  d.chunk_seconds = 3.0            # 3 s for MTT/MSD, 15 s for the private-style configs
  d.chunks_per_song = 1            # random chunks per song per epoch (the authors sample 1)
  d.short_policy = "pad"           # choices.SHORT_POLICIES: songs shorter than one chunk
  d.input_pipeline = "chunks"      # choices.INPUT_PIPELINES: the run's preprocessing contract (jaxtag/models/contract.py)
  d.graded = False                 # manifest/generated: graded ``targets`` in [0, 1] instead of binary ``tags``
  d.num_workers = -1               # grain worker processes; -1: from the machine, pinned in the workdir at first start
  d.worker_buffer_size = 2
  d.eval_num_workers = 0           # eval decode processes; 0 = in-process threads (no start-up per evaluation)
  d.read_threads = -1              # read threads per worker; -1: from the machine (jaxtag/data/tuning.py)
  d.device_prefetch = 2            # global batches a background thread puts on the devices ahead of the step
  d.root = ""                      # audio root directory (mtt, msd, manifest with relative paths)
  d.annotations = ""               # MTT annotations_final.csv
  d.tags_file = ""                 # optional tag list (one per line); default: the dataset's own list
  d.mtt_split = "pons"             # choices.MTT_SPLITS
  d.split_lists = ""               # clean split: directory with train/valid/test lists
  d.labels = ml_collections.ConfigDict({"train": "", "valid": "", "test": ""})  # MSD label files
  d.audio_pattern = "{id[2]}/{id[3]}/{id[4]}/{id}.clip.mp3"   # MSD audio path under root
  d.manifest = ""                  # JSONL / CSV manifest (private-style corpus, users' own data)
  d.train_size = 0                 # 0 = whole train pool; else a deterministic subset (100k/500k/1M)
  d.artist_split = False           # manifest without splits: artist-disjoint split
  d.packed_dir = ""                # DIR of `python -m jaxtag.data.pack`: read DIR/<split>/ shards instead of audio files
  d.generated_n = 2000             # embedded generated corpus: number of clips
  d.generated_seed = 0
  d.generated_clip_seconds = 10.0
  d.generated_format = "flac"      # choices.AUDIO_FORMATS
  d.cache_dir = ""                 # where the generated corpus is cached ("" = ~/.cache/jaxtag)

  # ---- model ------------------------------------------------------------------------------------
  m = c.model = ml_collections.ConfigDict()
  m.name = "spectrogram"           # jaxtag.models.registry.MODELS
  m.waveform_width = 1             # filter multiplier of the sample-level front-end (1, 2, 4)
  m.waveform_layers = 7            # 7 (3-s inputs) or 9 (15-s inputs)
  m.waveform_scale = 1.0           # fraction of those filters (0.5: the CPU-size study); 1 = the paper's
  m.spectrogram_k = 16             # filter factor k of the timbral/temporal front-end (8 or 16)
  m.backend_filters = 512          # F
  m.backend_units = 500            # U
  m.scalar_bn_quirk = False        # the authors' scalar BN on back-end conv 2/3
  m.dropout = 0.5
  m.bn_epsilon = 1e-3              # TF defaults, as the authors trained
  m.bn_momentum = 0.99
  m.dtype = "float32"              # choices.DTYPES: compute dtype (parameters stay float32)
  m.width = 1.0                    # width multiplier for baselines (tests shrink it)
  lm = m.logmel = ml_collections.ConfigDict()
  lm.n_fft = 512
  lm.hop = 256
  lm.n_mels = 96
  lm.fmin = 0.0
  lm.fmax = 8000.0
  lm.log_scale = 10000.0           # log10(log_scale * x + 1)
  lm.musicnn_compat = False        # float16 rounding of the mel power, as musicnn's preprocessing

  # ---- training ---------------------------------------------------------------------------------
  t = c.train = ml_collections.ConfigDict()
  t.global_batch_size = 32
  t.steps = 200_000
  t.learning_rate = 1e-3           # Adam
  t.l2 = 1e-5                      # 1e-5 * sum(kernel**2)/2, kernels only
  t.loss = "bce"                   # choices.LOSSES (mse: graded targets, the paper's private data)
  t.plateau_patience = 75          # evaluations without val-loss improvement before halving the LR
  t.plateau_factor = 0.5
  t.eval_every = 2000
  t.checkpoint_every = 1000
  t.keep = 3                       # latest checkpoints kept (the best-by-validation one is kept apart)
  t.log_every = 100
  t.metrics_every = 10             # host fetch of metrics every k steps (no per-step sync)
  t.best_metric = "loss"           # choices.BEST_METRICS: what the best/ checkpoint is chosen by (authors: loss)
  t.trainable = "all"              # choices.TRAINABLE: all | top (dense block + head) | head (linear probe)
  t.backbone_lr_scale = 1.0        # learning-rate factor of every trainable layer below the head
  t.early_stopping_patience = 0    # stop after this many validations without a better best_metric (0 = never)
  t.profile_steps = ""             # 'A:B': jax.profiler trace of steps A+1..B into WORKDIR/profile (profiling.py)

  t.recipe = "default"             # choices.RECIPES: default (Adam + plateau halving) | won (Adam -> SGD, jaxtag/training/recipe.py)
  t.won_phase_epochs = (80, 20, 20)  # won: epochs of Adam, of SGD at the 2nd rate, of SGD at the 3rd (Won et al.)
  t.won_phase_steps = ()           # won: the same lengths in steps (overrides the epochs; short runs, tests)
  t.won_learning_rates = (1e-4, 1e-3, 1e-4, 1e-5)   # won: Adam's rate, then the three SGD (Nesterov 0.9) rates
  t.won_weight_decay = 1e-4        # won: PyTorch-style weight decay (wd * param added to every gradient)

  # ---- augmentation on the device, in the train step (jaxtag/training/augment.py); all off: the paper has none --
  a = c.augment = ml_collections.ConfigDict()
  a.speed = 0.0                    # varispeed: resample by a random ratio in [1 - speed, 1 + speed] (pitch and tempo)
  a.shift_seconds = 0.0            # crop jitter: shift each chunk by up to +-this, the vacated edge zero-filled
  a.gain_db = 0.0                  # random gain, uniform in +-gain_db dB
  a.polarity = 0.0                 # probability of flipping the waveform's sign
  a.mixup_alpha = 0.0              # mixup of audio and targets with lam ~ Beta(alpha, alpha); 0 = off
  a.noise_prob = 0.0               # probability of adding white noise to an example
  a.noise_snr_min_db = 10.0        # the noise's SNR is uniform in [min, max] dB, against the example's power
  a.noise_snr_max_db = 40.0
  a.time_masks = 0                 # SpecAugment on mel models' log-mel: time masks per example
  a.time_mask_frames = 0           # widest time mask, frames
  a.freq_masks = 0                 # SpecAugment: frequency masks per example
  a.freq_mask_bins = 0             # widest frequency mask, mel bins

  # ---- initialisation from another run (jaxtag/training/transfer.py) ---------------------------------------
  i = c.init = ml_collections.ConfigDict()
  i.workdir = ""                   # "" = from scratch; else any jaxtag run (trained, or imported musicnn/vgg)
  i.checkpoint = "best"            # best | latest | a step number of init.workdir

  # ---- evaluation -------------------------------------------------------------------------------
  e = c.eval = ml_collections.ConfigDict()
  e.split = "valid"                # choices.SPLITS
  e.batch_size = 64                # global chunks per eval batch
  e.max_songs = 0                  # 0 = every song of the split
  e.protocol = "chunks"            # choices.EVAL_PROTOCOLS: all non-overlapping chunks | crops16 (Won et al.'s 16 crops)
  return c


def new_config(arg: str | None, experiment: str, dataset: str, title: str, chunk_seconds: float):
  """``(parsed args, base config)`` for one experiment on one data set (the start of every config file)."""
  args = parse_arg(arg)
  c = base_config()
  c.experiment = experiment
  c.data.dataset, c.data.dataset_title, c.data.chunk_seconds = dataset, title, chunk_seconds
  return args, c


# ``key=value`` config arguments -> the config key they set (the type is KEYVALUES')
ARG_KEYS = {"steps": "train.steps", "batch": "train.global_batch_size", "seed": "seed",
            "train_size": "data.train_size", "dtype": "model.dtype"}


def _set(c: ml_collections.ConfigDict, dotted: str, value) -> None:
  *parents, leaf = dotted.split(".")
  node = c
  for p in parents:
    node = node[p]
  node[leaf] = value


def apply_args(c: ml_collections.ConfigDict, args: dict, default_frontend: str) -> ml_collections.ConfigDict:
  """Applies parsed arguments common to all configs (front-end choice, small, model=, steps=, ...)."""
  frontend = "waveform" if args.get("waveform") else "spectrogram" if args.get("spectrogram") else default_frontend
  c.model.name = args.get("model", frontend)
  if args.get("smoke"):
    apply_smoke(c)
  if c.model.name in ("samplecnn", "samplecnn_multi"):   # their publication's 3^10-sample window (3.69 s)
    c.data.chunk_seconds = 3 ** 10 / c.data.sample_rate
  if args.get("small") and not args.get("smoke"):
    c.model.backend_filters, c.model.backend_units = 64, 200
  for arg, key in ARG_KEYS.items():
    if arg in args:
      _set(c, key, args[arg])
  return c


def apply_smoke(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Shrinks any config to a CPU run on the embedded generated corpus (a few minutes on 2 cores)."""
  c.data.dataset = "generated"
  c.data.dataset_title = "jaxtag generated corpus"
  c.data.generated_n = 480
  c.data.generated_clip_seconds = 6.0
  c.data.chunk_seconds = 1.5
  c.data.train_size = 0
  c.model.waveform_width = 1
  c.model.waveform_layers = 7
  c.model.spectrogram_k = 4
  c.model.backend_filters, c.model.backend_units = 32, 64
  c.model.width = 0.25
  c.train.global_batch_size = 32
  c.train.steps = 600
  c.train.learning_rate = 2e-3     # 600 steps is a short budget; the paper's 1e-3 reaches the same place later
  c.train.eval_every = 200
  c.train.checkpoint_every = 100
  c.train.log_every = 20
  c.train.plateau_patience = 3
  c.train.loss = "bce"
  c.eval.batch_size = 64
  return c
