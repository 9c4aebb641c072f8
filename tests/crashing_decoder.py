"""Test-only decode task for ``jaxtag.serving.tag``'s pool: a file named ``crash*`` kills its worker process
(``os._exit``, as an OOM kill or a segfaulting decoder would), every other file decodes as usual. Kept apart
from ``faults.py`` so the spawned workers that unpickle it import no jax."""
import os

from jaxtag.serving import tag_worker as worker


def decode_file(path, *args, **kwargs):
  if os.path.basename(path).startswith("crash"):
    os._exit(9)
  return worker.decode_file(path, *args, **kwargs)
