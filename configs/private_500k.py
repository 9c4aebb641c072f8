"""Private-style corpus, 500k training songs (see configs/private.py)."""
from configs import private


def get_config(arg=None):
  return private.private_config(arg, train_size=500_000, name="private_500k")
