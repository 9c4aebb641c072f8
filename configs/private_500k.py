"""Private-style corpus, 500k training songs (see configs/private.py)."""
from configs import private


def get_config(arg=None):   # global batch 512: a TPU v5e-64 slice (8 per chip)
  return private.private_config(arg, train_size=500_000, name="private_500k", batch=512)
