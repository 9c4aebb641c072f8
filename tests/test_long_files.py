"""Bounded decode memory: a random training chunk of a 2-hour 44.1-kHz stereo file is read by seeking (RSS and
time measured in a fresh subprocess, as a loader worker would), and matches a whole-file decode."""
import json
import os
import struct
import subprocess
import sys
import textwrap

import numpy as np
import soundfile as sf

from conftest import ROOT
from jaxtag.data import decode, pipeline

RATE, SR = 44100, 16000


def sparse_wav(path, seconds: float) -> None:
  """A real 16-bit stereo WAV of ``seconds`` written in a second: a RIFF header, a tone in the first and last
  minute, and between them a sparse hole (zeros) that costs no disk."""
  n = int(seconds * RATE)
  t = np.arange(60 * RATE) / RATE
  tone = (0.25 * 32767 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
  pcm = np.stack([tone, tone // 2], 1).tobytes()
  data = n * 2 * 2
  header = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + data, b"WAVE", b"fmt ", 16, 1, 2, RATE, RATE * 4, 4, 16,
                       b"data", data)
  with open(path, "wb") as f:
    f.write(header + pcm)
    f.truncate(len(header) + data)
    f.seek(len(header) + data - len(pcm))
    f.write(pcm)
  assert sf.info(path).frames == n


CHILD = textwrap.dedent("""
  import json, sys, time
  import numpy as np
  from jaxtag.data import pipeline
  # peak RSS of this process image, MB (ru_maxrss would include the forking parent's)
  hwm = lambda: int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) / 1024
  before = hwm()
  reader = pipeline.SongReader([sys.argv[1]], 16000, 3 * 16000, "pad")
  t0 = time.perf_counter()
  chunks = [reader.read_chunk(0, np.random.default_rng(seed)) for seed in range(3)]
  seconds = (time.perf_counter() - t0) / 3
  after = hwm()
  print(json.dumps({"peak_rss_mb": after, "delta_mb": after - before, "s_per_chunk": seconds,
                    "shapes": [c.shape[0] for c in chunks]}))
""")


def test_two_hour_file_chunk_within_memory_and_time(tmp_path):
  path = str(tmp_path / "two_hours.wav")
  sparse_wav(path, 2 * 3600)
  proc = subprocess.run([sys.executable, "-c", CHILD, path], cwd=ROOT, capture_output=True, text=True, timeout=300,
                        env={**os.environ, "PYTHONPATH": ROOT})
  assert proc.returncode == 0, proc.stderr[-3000:]
  m = json.loads(proc.stdout.strip().splitlines()[-1])
  assert m["shapes"] == [3 * SR] * 3
  assert m["peak_rss_mb"] <= 300, m    # a whole decode would hold 2.5 GB of float32 stereo
  assert m["s_per_chunk"] <= 1.0, m


def test_seeked_chunk_equals_whole_file_decode(tmp_path):
  """A long file (lowered threshold) read by seeking vs the same span of a whole decode, 44.1 kHz stereo FLAC:
  equal to float rounding (the resampler sees the same, aligned input)."""
  path = str(tmp_path / "song.flac")
  rng = np.random.default_rng(0)
  sf.write(path, (0.2 * rng.standard_normal((20 * RATE, 2))).astype(np.float32), RATE, subtype="PCM_16")
  whole = decode.load_audio(path, SR)
  assert decode.probe(path) is None   # 20 s: read whole, as before
  old = decode.LONG_FILE_SECONDS
  try:
    decode.LONG_FILE_SECONDS = 10
    assert decode.probe(path) == (RATE, 20 * RATE)
    reader = pipeline.SongReader([path], SR, SR, "pad")
    for seed in range(4):
      rng_a, rng_b = np.random.default_rng(seed), np.random.default_rng(seed)
      chunk = reader.read_chunk(0, rng_a)
      start = int(rng_b.integers(len(whole) - SR + 1))
      np.testing.assert_allclose(chunk, whole[start:start + SR], atol=2e-6)
    edge = decode.read_window(path, SR, len(whole) - SR, SR)   # the very end of the file
    np.testing.assert_allclose(edge, whole[-SR:], atol=2e-6)
  finally:
    decode.LONG_FILE_SECONDS = old
