"""The private-style configs train on graded targets: a graded manifest's values reach the MSE loss as they are."""
import json

import numpy as np
import soundfile as sf

from jaxtag.training import step
from jaxtag.data import index, pipeline


def test_graded_manifest_reaches_the_mse_loss_with_its_graded_values(tmp_path):
  from configs import private_100k, private_1m
  for name in ("a", "b", "c", "d"):
    sf.write(str(tmp_path / f"{name}.wav"), np.full(16000 * 2, 0.1, np.float32), 16000)
  graded = {"a": {"rock": 0.3, "piano": 0.9}, "b": {"rock": 0.7}, "c": {"piano": 0.2}, "d": {"rock": 1.0}}
  with open(tmp_path / "m.jsonl", "w") as f:
    for name, targets in graded.items():
      f.write(json.dumps({"path": f"{name}.wav", "targets": targets, "split": "train"}) + "\n")
  for module in (private_1m, private_100k):
    c = module.get_config()
    assert c.data.graded and c.train.loss == "mse"
    c.data.manifest, c.data.train_size, c.data.chunk_seconds = str(tmp_path / "m.jsonl"), 0, 1.0
    c.data.num_workers, c.data.read_threads = 0, 1
    idx = index.load_songs(c.data)
    assert idx.graded and sorted(idx.tags) == ["piano", "rock"]
    songs = idx.split("train")
    batch = next(pipeline.train_iterator(c.data, songs, local_batch=4, seed=0))
    by_value = sorted(map(tuple, batch["targets"].tolist()))
    want = sorted(tuple(graded[n].get(t, 0.0) for t in idx.tags) for n in "abcd")
    np.testing.assert_allclose(by_value, want, atol=1e-6)   # 0.3 / 0.2 stay, not cut to 0 at 0.5
    logits = np.linspace(-1, 1, 8, dtype=np.float32).reshape(4, 2)
    loss = float(step.data_loss(logits, batch["targets"], c.train.loss))
    expect = np.mean((1 / (1 + np.exp(-logits)) - batch["targets"]) ** 2)
    binary = np.mean((1 / (1 + np.exp(-logits)) - (batch["targets"] >= 0.5)) ** 2)
    assert abs(loss - expect) < 1e-6 and abs(loss - binary) > 1e-3
