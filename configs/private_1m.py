"""Private-style corpus, 1m training songs (see configs/private.py)."""
from configs import private


def get_config(arg=None):
  return private.private_config(arg, train_size=1_000_000, name="private_1m")
