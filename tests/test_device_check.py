"""The GPU check, so it cannot rot between loans: its CPU dry run writes every phase's rows, summary.md and
summary.json; its wheelhouse (listed, never downloaded here) holds what the device image lacks, one version of each
inside pyproject's ranges, with their own needs, and fits the 64 MiB that travels with the tree."""
import importlib.metadata as md
import json
import os
import re
import subprocess
import sys
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from conftest import ROOT

PHASES = ("env", "matmul", "step", "kernels", "e2e", "smoke")
# What the device image's python3 already holds, of what the wheelhouse's packages need
# (/work/.library/device/KINDS.md's package list of the nvidia-h200 image).
IMAGE = {"absl-py", "aiofiles", "cloudpickle", "etils", "fsspec", "humanize", "jax", "jaxlib", "msgpack", "numpy",
         "packaging", "prometheus-client", "protobuf", "psutil", "pyyaml", "rich", "simplejson", "tensorstore",
         "treescope", "typing-extensions", "uvloop", "wrapt", "zipp"}
MUST = {"grain", "array-record", "clu", "ml-collections", "soundfile", "soxr", "tensorboardx", "orjson", "flax",
        "optax", "orbax-checkpoint"}


def wheel_specs() -> dict[str, str]:
  out = subprocess.run(["bash", os.path.join(ROOT, "benchmarks/device_wheels.sh"), "--list"], capture_output=True,
                       text=True, check=True).stdout.split()
  specs = {}
  for line in out:
    name, version = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([0-9][0-9A-Za-z.]*)", line).groups()
    specs[canonicalize_name(name)] = version
  assert len(specs) == len(out)   # one version of each
  return specs


def test_wheelhouse_lists_what_the_image_lacks_inside_pyproject_ranges():
  specs = wheel_specs()
  assert MUST <= set(specs)
  assert not {n for n in specs if n in ("jax", "jaxlib", "numpy") or n.startswith(("jax-cuda", "nvidia-"))}
  with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
    pins = {canonicalize_name(r.name): r.specifier for r in map(Requirement, tomllib.load(f)["project"]["dependencies"])}
  for name, version in specs.items():
    md.version(name)   # installed here too (a requirement of jaxtag's own), so its needs can be read below
    if name in pins:
      assert version in pins[name], f"{name}=={version} is outside pyproject's {pins[name]}"


def test_wheelhouse_needs_are_met_and_it_fits_the_transfer():
  """Every listed wheel's own requirements (for Linux, CPython 3.12, no extras) are in the wheelhouse or the image;
  the installed size of the listed packages (larger than their compressed wheels) plus the tracked tree stay well
  under the 64 MiB a device call carries."""
  specs = wheel_specs()
  env = {"sys_platform": "linux", "platform_system": "Linux", "implementation_name": "cpython",
         "python_version": "3.12", "extra": ""}
  installed = 0
  for name in specs:
    dist = md.distribution(name)
    for req in map(Requirement, dist.requires or []):
      if req.marker is None or req.marker.evaluate(env):
        assert canonicalize_name(req.name) in set(specs) | IMAGE, f"{name} needs {req.name}: neither carried nor there"
    installed += sum(f.size or 0 for f in dist.files or [])
  tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
  tree = sum(os.path.getsize(os.path.join(ROOT, p.decode())) for p in tracked if p and
             os.path.isfile(os.path.join(ROOT, p.decode())))
  assert installed < 40 * 2**20 and installed + tree < 56 * 2**20, (installed / 2**20, tree / 2**20)


def test_dry_run_writes_every_phase_and_the_summary(tmp_path):
  out = tmp_path / "out"
  # a deadline far above the ~1-2 minutes it takes, so a busy machine slows the test but cannot fail it
  # (and one CPU device: the tests' 8 fake ones would not divide the toy batches of 2 and 4)
  env = {**os.environ, "PYTHON": sys.executable, "DEADLINE_S": "900", "WHEELS": str(tmp_path / "no-wheels"),
         "XLA_FLAGS": ""}
  proc = subprocess.run(["bash", "benchmarks/device_check.sh", "--dry-run", str(out)], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=1200)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
  by = {p: [r for r in rows if r["phase"] == p] for p in PHASES}
  assert all(by[p] for p in PHASES), {p: len(r) for p, r in by.items()}
  assert not [r for r in rows if "error" in r], [r for r in rows if "error" in r]
  assert by["env"][0]["backend"] == "cpu" and by["env"][0]["dry_run"] is True
  assert {r["dtype"] for r in by["matmul"]} == {"bfloat16", "float32"} and all(r["tflop_per_s"] > 0 for r in by["matmul"])
  best = {r["dtype"]: r for r in by["step"] if r.get("best")}
  assert set(best) == {"bfloat16", "float32"} and all(0 < r["mfu"] and r["chunks_per_s"] > 0 for r in best.values())
  assert {r["kernels"] for r in by["kernels"]} == {"fused", "plain"}
  assert by["e2e"][0]["chunks_per_s"] > 0 and by["e2e"][0]["source"] == "packed"
  assert 0 <= by["smoke"][0]["test_roc_auc"] <= 1 and by["smoke"][0]["wall_s"] > 0
  summary = json.loads((out / "summary.json").read_text())
  assert summary["dry_run"] is True and len(summary["goals"]) == 2 and summary["peak_tflop_per_s"] > 0
  assert all(summary[p] == by[p] for p in PHASES)
  text = (out / "summary.md").read_text()
  for heading in ("## Goals", "## Matmul peak", "## Step-only", "## Kernels", "## End to end", "## Smoke"):
    assert heading in text
  assert "| tiny | bfloat16 | 2 |" in text and "Phases without rows" not in text
