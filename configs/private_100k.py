"""Private-style corpus, 100k training songs (see configs/private.py)."""
from configs import private


def get_config(arg=None):   # global batch 256: one 8-GPU node (32 per GPU)
  return private.private_config(arg, train_size=100_000, name="private_100k", batch=256)
