"""``python -m jaxtag.summary``: the configs of the paper's models print the paper's parameter counts."""
import os
import subprocess
import sys

import pytest

from configs import msd, mtt, private_1m
from conftest import ROOT
from jaxtag.models import params as summary

CONFIGS = [  # the list: config argument -> total_params with 50 tags
    (mtt, "waveform", 11_826_102),
    (mtt, "spectrogram", 5_069_686),
    (mtt, "waveform,small", 1_311_962),
    (mtt, "spectrogram,small", 223_130),
    (msd, "waveform", 5_379_126),
    (msd, "spectrogram", 5_926_198),
    (private_1m, "waveform", 5_478_198),
    (private_1m, "spectrogram", 5_926_198),
]


@pytest.mark.parametrize("module,arg,count", CONFIGS, ids=[f"{m.__name__[8:]}:{a}" for m, a, _ in CONFIGS])
def test_summary_prints_the_paper_counts(module, arg, count):
  text = summary.summarize(module.get_config(arg))
  assert text.splitlines()[-1] == f"total_params={count}"
  assert "backend/conv1/kernel" in text and "BN running statistics (not counted)" in text


def test_command_line():
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, "-m", "jaxtag.summary", "--config=configs/mtt.py:spectrogram,small"],
                       cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
  assert out.strip().splitlines()[-1] == "total_params=223130"
