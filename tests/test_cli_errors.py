"""Every jaxtag command, given each mistake a new user makes, ends in exactly one ``error:`` line that names
the problem, exit status 2 and no traceback; ``--traceback`` shows the trace instead.

The table runs in one interpreter (``tests/cli_cases.py``: each case parses its own flags from scratch, as
``python -m`` would), so a hundred command lines cost one import of jax; a few cases also run as real
subprocesses, for the end-to-end guarantee.
"""
import json
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT

HERE = os.path.dirname(os.path.abspath(__file__))
LOG_LINE = re.compile(r"^[IWEF]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] ")

# (id, argv after ``python -m``, what the one line must say). {root}: the inputs of cli_cases.make_inputs;
# {run}: a run directory with config and tags but no checkpoint yet; {smoke}: configs/smoke.py.
CASES = [
  # evaluate
  ("evaluate-workdir-typo", "jaxtag evaluate --workdir={root}/typo", r"--workdir=\S*typo does not exist"),
  ("evaluate-workdir-not-a-run", "jaxtag evaluate --workdir={root}/empty", r"no config.json: not a jaxtag run"),
  ("evaluate-workdir-is-a-file", "jaxtag evaluate --workdir={root}/notes.txt", r"no config.json"),
  ("evaluate-checkpoint-typo", "jaxtag evaluate --workdir={run} --checkpoint=bset",
   r"--checkpoint=bset: unknown checkpoint 'bset'; give best, latest or a step number"),
  ("evaluate-checkpoint-negative", "jaxtag.evaluate --workdir={run} --checkpoint=-1", r"unknown checkpoint '-1'"),
  ("evaluate-checkpoint-missing-step", "jaxtag evaluate --workdir={run} --checkpoint=7",
   r"--checkpoint=7: no checkpoint at step 7 in \S+; it has none"),
  ("evaluate-no-checkpoint-yet", "jaxtag evaluate --workdir={run}", r"holds no checkpoint yet"),
  ("evaluate-split-typo", "jaxtag evaluate --workdir={run} --split=tset",
   r"--split=tset: value should be one of <train\|valid\|test>"),
  ("evaluate-batch-negative", "jaxtag evaluate --workdir={run} --batch=-4", r"--batch=-4: -4 is not a non-negative integer"),
  ("evaluate-no-workdir", "jaxtag evaluate", r"^error: --workdir is required$"),
  ("evaluate-extra-args", "jaxtag evaluate --workdir={run} oops", r"unexpected arguments: \['oops'\]"),
  ("evaluate-ensemble-member-typo", "jaxtag evaluate --workdir={run} --ensemble={root}/typo2",
   r"--ensemble member=\S*typo2 does not exist"),
  ("evaluate-unknown-flag", "jaxtag evaluate --workdir={run} --chekpoint=best",
   r"Unknown command line flag 'chekpoint'. Did you mean: checkpoint \? \(see --help\)"),
  # predict
  ("predict-workdir-typo", "jaxtag predict {root}/notes.txt --workdir={root}/typo", r"does not exist"),
  ("predict-checkpoint-typo", "jaxtag.predict {root}/notes.txt --workdir={run} --checkpoint=bset",
   r"unknown checkpoint 'bset'"),
  ("predict-checkpoint-missing-step", "jaxtag predict {root}/notes.txt --workdir={run} --checkpoint=12",
   r"no checkpoint at step 12"),
  ("predict-batch-zero", "jaxtag predict {root}/notes.txt --workdir={run} --batch=0",
   r"--batch=0: 0 is not a positive integer"),
  ("predict-top-zero", "jaxtag predict {root}/notes.txt --workdir={run} --top=0", r"--top=0: .*positive"),
  ("predict-overlap-negative", "jaxtag predict {root}/notes.txt --workdir={run} --input_overlap=-1",
   r"--input_overlap=-1: -1.0 is not a non-negative number"),
  ("predict-taggram-not-png", "jaxtag predict {root}/notes.txt --workdir={run} --taggram={root}/t.jpg",
   r"--taggram is a PNG file: its name must end in .png"),
  ("predict-no-files", "jaxtag predict --workdir={run}", r"usage: python -m jaxtag.predict FILE_OR_DIR"),
  # tag
  ("tag-workdir-typo", "jaxtag tag --workdir={root}/typo --input={root}/empty --out={root}/o", r"does not exist"),
  ("tag-checkpoint-typo", "jaxtag tag --workdir={run} --input={root}/empty --out={root}/o --checkpoint=bset",
   r"unknown checkpoint 'bset'"),
  ("tag-checkpoint-missing-step", "jaxtag.tag --workdir={run} --input={root}/empty --out={root}/o1 --checkpoint=9",
   r"no checkpoint at step 9"),
  ("tag-out-is-a-file", "jaxtag tag --workdir={run} --input={root}/empty --out={root}/notes.txt",
   r"--out=\S+notes.txt is a file; give a directory"),
  ("tag-input-missing", "jaxtag tag --workdir={run} --input={root}/nope --out={root}/o2",
   r"--input=\S+nope: no such directory or file"),
  ("tag-input-binary-list", "jaxtag tag --workdir={run} --input={root}/binary.lst --out={root}/o3",
   r"is not a text list of paths \(not UTF-8"),
  ("tag-num-processes-alone", "jaxtag tag --workdir={run} --input={root}/empty --out={root}/o4 --num_processes=2",
   r"--num_processes given alone; give all of --coordinator_address, --num_processes, --process_id"),
  ("tag-process-id-out-of-range", "jaxtag tag --workdir={run} --input={root}/empty --out={root}/o5 "
   "--coordinator_address=localhost:1 --num_processes=2 --process_id=2", r"--process_id=2 is not in 0..1"),
  ("tag-top-zero", "jaxtag tag --workdir={run} --input={root}/empty --out={root}/o --top=0", r"--top=0"),
  ("tag-batch-zero", "jaxtag tag --workdir={run} --input={root}/empty --out={root}/o --batch=0", r"--batch=0"),
  ("tag-shard-size-zero", "jaxtag tag --workdir={run} --input={root}/empty --out={root}/o --shard_size=0",
   r"--shard_size=0"),
  ("tag-shard-seconds-zero", "jaxtag tag --workdir={run} --input={root}/empty --out={root}/o --shard_seconds=0",
   r"--shard_seconds must be > 0"),
  ("tag-max-seconds-negative", "jaxtag tag --workdir={run} --input={root}/empty --out={root}/o --max_seconds=-1",
   r"--max_seconds=-1"),
  ("tag-workers-below-minus-one", "jaxtag tag --workdir={run} --input={root}/empty --out={root}/o --workers=-2",
   r"--workers=-2"),
  ("tag-format-typo", "jaxtag tag --workdir={run} --input={root}/empty --out={root}/o --format=csv",
   r"--format=csv: value should be one of"),
  ("tag-missing-out", "jaxtag tag --workdir={run} --input={root}/empty", r"^error: --out is required$"),
  # export
  ("export-checkpoint-typo", "jaxtag export --workdir={run} --out={root}/m.onnx --checkpoint=bset",
   r"unknown checkpoint 'bset'"),
  ("export-out-not-onnx", "jaxtag.export --workdir={run} --out={root}/m.txt",
   r"--out is the ONNX file to write: its name must end in .onnx"),
  ("export-workdir-typo", "jaxtag export --workdir={root}/typo --out={root}/m.onnx", r"does not exist"),
  ("export-checkpoint-missing-step", "jaxtag export --workdir={run} --out={root}/m.onnx --checkpoint=5",
   r"no checkpoint at step 5"),
  # train
  ("train-workdir-is-a-file", "jaxtag train --config={smoke} --workdir={root}/notes.txt",
   r"--workdir=\S+notes.txt is a file; give a directory"),
  ("train-num-processes-alone", "jaxtag train --config={smoke} --workdir={root}/t --num_processes=2",
   r"--num_processes given alone"),
  ("train-num-processes-zero", "jaxtag.main --config={smoke} --workdir={root}/t --num_processes=0",
   r"--num_processes=0"),
  ("train-config-missing", "jaxtag train --config={root}/nope.py --workdir={root}/t",
   r"cannot load the config file.*nope.py"),
  ("train-config-arg-typo", "jaxtag train --config={smoke}:bogus --workdir={root}/t",
   r"unknown config argument 'bogus'"),
  ("train-config-key-typo", "jaxtag train --config={smoke} --workdir={root}/t --config.train.stepz=3",
   r"unknown config key 'train.stepz'; did you mean 'train.steps'\?$"),
  ("train-config-value-type", "jaxtag train --config={smoke} --workdir={root}/t --config.train.steps=many",
   r"train.steps='many' has the wrong type; valid: int >= 1"),
  ("train-init-checkpoint-typo", "jaxtag train --config={smoke} --workdir={root}/t --config.init.workdir={run} "
   "--config.init.checkpoint=bset", r"init.checkpoint='bset': .*valid: 'best' \| 'latest' \| a step number"),
  ("train-init-workdir-typo", "jaxtag train --config={smoke} --workdir={root}/t --config.init.workdir={root}/typo",
   r"init.workdir \S+typo has no config.json"),
  ("train-no-workdir", "jaxtag train --config={smoke}", r"^error: --workdir is required$"),
  ("train-extra-args", "jaxtag train --config={smoke} --workdir={root}/t extra", r"unexpected arguments"),
  # study
  ("study-set-without-equals", "jaxtag.study --config={configs}/study.py --workdir={root}/s --set=foo",
   r"--set=foo: give KEY=VALUE"),
  ("study-set-unknown-key", "jaxtag study --config={configs}/study.py:tiny --workdir={root}/s --set=data.nope=1",
   r"unknown config key 'data.nope'; valid keys of data: dataset, "),
  ("study-set-bad-value", "jaxtag study --config={configs}/study.py:tiny --workdir={root}/s "
   "--set=train.steps=many", r"train.steps='many' has the wrong type"),
  ("study-config-missing", "jaxtag study --config={root}/nope.py --workdir={root}/s",
   r"cannot load the config file '\S+nope.py': no such file$"),
  ("study-config-arg-typo", "jaxtag study --config={configs}/study.py:bogus --workdir={root}/s", r"bogus"),
  ("study-workdir-is-a-file", "jaxtag study --config={configs}/study.py --workdir={root}/notes.txt",
   r"--workdir=\S+notes.txt is a file"),
  ("study-no-workdir", "jaxtag.study --config={configs}/study.py", r"^error: --workdir is required$"),
  # data
  ("render-n-zero", "jaxtag render --out={root}/r --n=0", r"--n=0: 0 is not a positive integer"),
  ("render-clip-seconds-zero", "jaxtag.data.render.corpus --out={root}/r --clip_seconds=0",
   r"--clip_seconds must be > 0"),
  ("render-soundfont-missing", "jaxtag render --out={root}/r --n=2 --soundfont={root}/nope.sf2",
   r"soundfont '\S+nope.sf2' not found"),
  ("render-out-is-a-file", "jaxtag render --out={root}/notes.txt --n=2", r"--out=\S+notes.txt is a file"),
  ("render-no-out", "jaxtag render", r"^error: --out is required$"),
  ("generate-n-zero", "jaxtag generate --out={root}/g --n=0", r"--n=0: 0 is not a positive integer"),
  ("generate-out-is-a-file", "jaxtag.data.generate --out={root}/notes.txt --n=2", r"is a file"),
  ("generate-format-typo", "jaxtag generate --out={root}/g --format=ogg", r"--format=ogg"),
  ("pack-split-typo", "jaxtag pack --config={smoke} --out={root}/p --split=tset", r"--split lists splits among"),
  ("pack-out-is-a-file", "jaxtag pack --config={smoke} --out={root}/notes.txt", r"--out=\S+notes.txt is a file"),
  ("pack-songs-per-shard-zero", "jaxtag.data.pack --config={smoke} --out={root}/p --songs_per_shard=0",
   r"--songs_per_shard=0"),
  ("stats-tags-file-missing", "jaxtag data-stats --config={smoke} --config.data.tags_file={root}/nope.txt",
   r"data.tags_file '\S+nope.txt' not found"),
  ("stats-msd-labels-missing", "jaxtag.data.stats --config={smoke} --config.data.dataset=msd "
   "--config.data.labels.train={root}/ids.txt:{root}/y.npy", r"MSD labels file '\S+ids.txt' not found"),
  ("stats-msd-tsv-missing", "jaxtag data-stats --config={smoke} --config.data.dataset=msd "
   "--config.data.labels.train={root}/train.tsv", r"MSD labels file '\S+train.tsv' not found"),
  ("stats-manifest-missing", "jaxtag.data.summary --config={smoke} --config.data.dataset=manifest "
   "--config.data.manifest={root}/songs.jsonl", r"songs.jsonl' not found"),
  ("stats-dataset-typo", "jaxtag data-stats --config={smoke} --config.data.dataset=mtd",
   r"unknown data.dataset 'mtd'"),
  ("params-config-missing", "jaxtag params --config={root}/nope.py", r"cannot load the config file.*nope.py"),
  ("params-n-tags-zero", "jaxtag.summary --config={smoke} --n_tags=0", r"--n_tags=0"),
  ("params-model-typo", "jaxtag params --config={smoke} --config.model.name=wavform", r"unknown model.name"),
  # analyze
  ("analyze-no-subcommand", "jaxtag analyze", r"usage: python -m jaxtag.analyze"),
  ("analyze-subcommand-typo", "jaxtag analyze scailing {run}", r"usage: python -m jaxtag.analyze"),
  ("analyze-exclusive-unknown-tags", "jaxtag analyze exclusive {run} --pairs=foo:bar",
   r"--pairs=foo:bar: unknown tags \['foo', 'bar'\]; this run's tags are"),
  ("analyze-exclusive-pair-without-colon", "jaxtag analyze exclusive {run} --pairs=foo",
   r"--pairs=foo: give a pair of tags as 'a:b'"),
  ("analyze-exclusive-not-evaluated", "jaxtag analyze exclusive {root}/empty",
   r"no predictions_test.npz; evaluate the run first: jaxtag evaluate"),
  ("analyze-popularity-split-not-evaluated", "jaxtag analyze popularity {run} --split=valid",
   r"no predictions_valid.npz; evaluate the run first"),
  ("analyze-scaling-typo", "jaxtag.analyze scaling {root}/typo", r"typo: no such directory"),
  ("analyze-scaling-out-is-a-file", "jaxtag analyze scaling {run} --out={root}/notes.txt",
   r"--out=\S+notes.txt: is a file; give a directory"),
  ("analyze-popularity-out-is-a-file", "jaxtag analyze popularity {run} --out={root}/notes.txt",
   r"--out=\S+notes.txt: is a file; give a directory"),
  ("analyze-split-typo", "jaxtag analyze popularity {run} --split=tset", r"--split=tset"),
  ("analyze-top-k-negative", "jaxtag analyze popularity {run} --top_k=-1", r"--top_k=-1"),
  ("analyze-baseline-no-config", "jaxtag analyze baseline", r"baseline needs --config and --workdir"),
  ("analyze-probe-no-config", "jaxtag analyze probe {run}", r"probe needs --config=CONFIG"),
  ("analyze-probe-workdir-typo", "jaxtag analyze probe {root}/typo --config={smoke}", r"does not exist"),
  # tools
  ("import-musicnn-weights-missing", "jaxtag import-musicnn --weights={root}/MTT_musicnn.npz --out={root}/m",
   r"--weights '\S+MTT_musicnn.npz' not found"),
  ("import-musicnn-unknown-name", "jaxtag.tools.import_musicnn --weights={root}/other.npz --out={root}/m",
   r"cannot tell the model from 'other.npz'; pass --model"),
  ("import-musicnn-model-typo", "jaxtag import-musicnn --weights={root}/other.npz --out={root}/m --model=MTT",
   r"--model=MTT: value should be one of"),
  ("dispatcher-unknown-subcommand", "jaxtag evalute", r"unknown subcommand 'evalute'; choose from"),
]


def _argv(text: str, root: str) -> list[str]:
  return text.format(root=root, run=os.path.join(root, "run"), smoke=os.path.join(ROOT, "configs", "smoke.py"),
                     configs=os.path.join(ROOT, "configs")).split()


def _env() -> dict:
  return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])),
          "JAX_PLATFORMS": "cpu"}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("cli_errors"))
  cases = [{"id": name, "argv": _argv(argv, root)} for name, argv, _ in CASES]
  spec = str(tmp_path_factory.mktemp("cli_cases") / "cases.json")
  with open(spec, "w") as f:
    json.dump(cases, f)
  proc = subprocess.run([sys.executable, os.path.join(HERE, "cli_cases.py"), root, spec], cwd=root, env=_env(),
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-5000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


def assert_one_error_line(code: int, stderr: str, expected: str) -> str:
  lines = [line for line in stderr.splitlines() if line.strip() and not LOG_LINE.match(line)]
  assert "Traceback" not in stderr, stderr[-4000:]
  assert code == 2, f"exit status {code}:\n{stderr[-4000:]}"
  assert len(lines) == 1 and lines[0].startswith("error: "), stderr[-4000:]
  assert re.search(expected, lines[0]), lines[0]
  return lines[0]


@pytest.mark.parametrize("name, expected", [(c[0], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_each_mistake_is_one_error_line(results, name, expected):
  r = results[name]
  assert_one_error_line(r["code"], r["stderr"], expected)


def test_one_checkpoint_parser():
  """What ``--checkpoint`` of evaluate, predict, tag and export, ``init.checkpoint`` and
  ``checkpoint.load_for_inference`` all accept."""
  from jaxtag.core import choices
  assert choices.checkpoint("best") == "best" and choices.checkpoint("120") == 120 and choices.checkpoint(7) == 7
  for bad in ("bset", "-1", "1.5", "", True):
    with pytest.raises(choices.ConfigError, match="give best, latest or a step number"):
      choices.checkpoint(bad)


def _subprocess(*args, cwd=ROOT):
  return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=_env(), capture_output=True, text=True,
                        timeout=600)


def test_real_processes_end_in_one_line_and_traceback_shows_the_trace(tmp_path):
  """End to end, in fresh interpreters: a tool that imports jax (evaluate), two that had their own error
  handling (study, render), and ``--traceback``."""
  proc = _subprocess("jaxtag", "evaluate", f"--workdir={tmp_path}/typo")
  assert "does not exist" in assert_one_error_line(proc.returncode, proc.stderr, r"--workdir=")
  proc = _subprocess("jaxtag.study", f"--config={ROOT}/configs/study.py", f"--workdir={tmp_path}/s", "--set=foo")
  assert_one_error_line(proc.returncode, proc.stderr, r"--set=foo: give KEY=VALUE")
  proc = _subprocess("jaxtag.study", f"--config={ROOT}/configs/study.py", f"--workdir={tmp_path}/s", "--set=foo",
                     "--traceback")
  assert proc.returncode != 0 and "Traceback (most recent call last)" in proc.stderr
  assert "ConfigError: --set=foo: give KEY=VALUE" in proc.stderr
