"""Won et al. 2020's models ("Evaluation of CNN-based automatic music tagging models", SMC 2020) on
MagnaTagATune's clean split, by the authors' ``--model_type`` names (minzwon/sota-music-tagging-models):

  python -m jaxtag.main --config=configs/won.py:short_res --workdir=runs/won_short_res \\
      --config.data.annotations=.../annotations_final.csv --config.data.root=.../mp3 \\
      --config.data.split_lists=DIR_WITH_WONS_train_valid_test.npy

Each config carries the authors' input length (``training/main.py``) and front-end settings (16 kHz, n_fft 512,
hop 256, f 0-8000 Hz; 128 mels, or 96 for their FCN/CRNN/Musicnn), PyTorch's BatchNorm constants (epsilon 1e-5,
momentum 0.1 = flax 0.9), batch 16 and Adam at 1e-4 with an L2 of 1e-4 (jaxtag's: on kernels only; PyTorch's
``weight_decay`` also reaches biases and BN). The authors' later SGD phases are not part of this config.

New models (``jaxtag/models/won.py``; parameters equal the authors', tests/test_won.py), with the log-mel of
torchaudio + ``AmplitudeToDB`` (``model.logmel.style='torchaudio'``):
  short      short_chunk_cnn      59,049 samples   3,687,348 params (50 tags)
  short_res  short_chunk_resnet   59,049 samples  12,104,244
  hcnn       harmonic_cnn         80,000 samples   3,631,551 (harmonic filterbank, learnable Q)
  se         samplecnn_se         59,049 samples   6,951,858
  attention  cnnsa               240,000 samples  10,521,652
Models jaxtag already had, at the authors' input length and mel count but in jaxtag's own form (they keep
jaxtag's log10(10000 x + 1) log-mel and have no input BN):
  fcn        vgg         464,000 samples (29 s)   the authors' FCN is 64-128-128-128-64 channels with (2,4),(2,4),
                                                  (2,4),(3,5),(4,4) pools and input BN (447,732 params); jaxtag's
                                                  VGG is 32-64-128-128-176 with pools fitted to 96 mels (453,090)
  crnn       crnn        464,000 samples (29 s)   the authors' CRNN is conv 64-128-128-128 (ReLU), a 2-layer GRU
                                                  of 32 and input BN; jaxtag's is Choi's 3M-parameter CRNN (conv
                                                  128-256-256-256 with ELU, GRU 384-384: 3,121,970)
  sample     samplecnn    59,049 samples          the same layers and count (1,869,874); the first conv here is
                                                  'valid' where the authors pad one sample on each side
  musicnn    musicnn      48,000 samples (3 s)    F64/U200 as the authors' MTT setting; jaxtag's is musicnn
                                                  0.1.0's (787,159 params), the authors' reimplementation has
                                                  other front-end kernels and input BN (784,300)

``smoke`` (as every config's): the embedded generated corpus, a quarter of the widths and a short run; inputs
keep the authors' length up to 5 s (the corpus' clips are 6 s), so ``attention``, ``fcn`` and ``crnn`` see 5 s.
"""
from jaxtag.core import config as config_lib

# Won's model_type -> (jaxtag model name, input samples, mels); None: a waveform model
MODEL_TYPES = {
    "short": ("short_chunk_cnn", 59_049, 128),
    "short_res": ("short_chunk_resnet", 59_049, 128),
    "hcnn": ("harmonic_cnn", 80_000, 128),
    "se": ("samplecnn_se", 59_049, None),
    "attention": ("cnnsa", 15 * 16_000, 128),
    "fcn": ("vgg", 29 * 16_000, 96),
    "crnn": ("crnn", 29 * 16_000, 96),
    "sample": ("samplecnn", 59_049, None),
    "musicnn": ("musicnn", 3 * 16_000, 96),
}
NEW_MODELS = ("short", "short_res", "hcnn", "se", "attention")   # jaxtag/models/won.py: torchaudio log-mel
SMOKE_MAX_SAMPLES = 80_000      # 5 s: the smoke corpus' clips are 6 s


def get_config(arg=None):
  items = [s.strip() for s in (arg or "").split(",") if s.strip()]
  types = [i for i in items if i in MODEL_TYPES]
  if len(types) > 1:
    raise ValueError(f"choose one model type, not {types}")
  model_type = types[0] if types else "short_res"            # the paper's best model
  name, samples, n_mels = MODEL_TYPES[model_type]
  args, c = config_lib.new_config(",".join(i for i in items if i not in MODEL_TYPES), f"won_{model_type}", "mtt",
                              "MagnaTagATune", chunk_seconds=samples / 16_000)
  if "model" in args or args.get("waveform") or args.get("spectrogram"):
    raise ValueError(f"configs/won.py takes the authors' model types ({', '.join(MODEL_TYPES)}), "
                     "not model=, waveform or spectrogram")
  args["model"] = name
  c.data.mtt_split = "clean"                                  # the authors' split lists (data.split_lists)
  m = c.model
  m.bn_epsilon, m.bn_momentum = 1e-5, 0.9                     # PyTorch's BatchNorm defaults
  m.dropout = 0.5
  if n_mels is not None:
    m.logmel.n_mels = n_mels
    m.logmel.n_fft, m.logmel.hop, m.logmel.fmin, m.logmel.fmax = 512, 256, 0.0, 8000.0
  if model_type in NEW_MODELS and n_mels is not None:
    m.logmel.style = "torchaudio"
  if model_type == "musicnn":
    m.backend_filters, m.backend_units = 64, 200              # the authors' MTT musicnn
  t = c.train
  t.global_batch_size = 16
  t.learning_rate = 1e-4
  t.l2 = 1e-4
  t.eval_every = 1000                                         # about one epoch of the clean split at batch 16
  t.checkpoint_every = 1000
  t.steps = 200 * 1000                                        # the authors' 200 epochs
  config_lib.apply_args(c, args, default_frontend="spectrogram")
  c.data.chunk_seconds = (min(samples, SMOKE_MAX_SAMPLES) if args.get("smoke") else samples) / c.data.sample_rate
  return c
