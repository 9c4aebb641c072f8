"""Makes the musicnn reference for the through-``predict`` parity test (run once; outputs are committed).

  /work/venvs/musicnn/bin/python tests/data/musicnn_mp3/make_reference.py

Runs under musicnn's own venv (Python 3.11, tensorflow-cpu 2.15, numpy 1.26, librosa 0.10, musicnn 0.1.0;
never a jaxtag dependency). It re-encodes ``../shared/musicnn_ref/synth_chords_clicks_16k.wav`` to MP3 with
libsndfile (LAME, 16 kHz mono, MPEG layer III) and runs musicnn's unmodified ``extractor.extractor`` on that
MP3: ``librosa.load(sr=16000)``, one log-mel of the whole file with the float16 rounding, 187-frame patches
without overlap, one sigmoid row per patch. Writes, next to this script:

* ``synth_chords_clicks_16k.mp3``: the input (committed, so the test does not re-encode);
* ``MTT_musicnn_mp3_reference.json``: versions, sha256 of the MP3, sample count librosa decoded, musicnn's
  taggram (patches x 50), its mean over patches (what ``musicnn.tagger.top_tags`` ranks) and the top-10.
"""
import hashlib
import json
import os
import sys

import numpy as np
import soundfile as sf

HERE = os.path.dirname(os.path.abspath(__file__))
WAV = os.path.join(HERE, "..", "..", "..", "..", "shared", "musicnn_ref", "synth_chords_clicks_16k.wav")
MP3 = os.path.join(HERE, "synth_chords_clicks_16k.mp3")
MODEL = "MTT_musicnn"


def main():
  wav = os.environ.get("SYNTH_WAV", os.path.normpath(WAV))
  audio, sr = sf.read(wav, dtype="float32")
  assert sr == 16000 and audio.ndim == 1, (sr, audio.shape)
  if not os.path.exists(MP3):
    sf.write(MP3, audio, sr, format="MP3", subtype="MPEG_LAYER_III")
  import librosa
  import musicnn
  import tensorflow as tf
  from musicnn import extractor
  taggram, tags = extractor.extractor(MP3, model=MODEL, input_length=3, input_overlap=False,
                                      extract_features=False)
  mean = taggram.mean(axis=0)
  order = np.argsort(-mean)[:10]   # musicnn.tagger.top_tags: np.argsort(mean)[::-1][:topN]
  decoded, _ = librosa.load(MP3, sr=16000)
  with open(MP3, "rb") as f:
    sha = hashlib.sha256(f.read()).hexdigest()
  out = {
      "made_by": "tests/data/musicnn_mp3/make_reference.py", "model": MODEL,
      "versions": {"python": sys.version.split()[0], "tensorflow": tf.__version__, "numpy": np.__version__,
                   "librosa": librosa.__version__, "musicnn": getattr(musicnn, "__version__", "0.1.0"),
                   "soundfile": sf.__version__, "libsndfile": sf.__libsndfile_version__},
      "mp3": os.path.basename(MP3), "mp3_sha256": sha, "decoded_samples": int(len(decoded)),
      "tags": [str(t) for t in tags], "taggram": taggram.astype(float).tolist(), "mean": mean.astype(float).tolist(),
      "top10": [str(tags[i]) for i in order],
  }
  with open(os.path.join(HERE, f"{MODEL}_mp3_reference.json"), "w") as f:
    json.dump(out, f, indent=1)
  print(f"{len(taggram)} patches; top-10: {out['top10']}")


if __name__ == "__main__":
  main()
