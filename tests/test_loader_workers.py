"""Loader workers never outlive the trainer: kill -9 of a training process leaves no process of the run and
none of its /dev/shm segments behind (jaxtag.data.workers)."""
import os
import signal
import subprocess
import time

from conftest import ROOT
from test_train import main_cmd, wait_for


def session_processes(sid: int) -> list[int]:
  """Live (non-zombie) processes of session ``sid``: the trainer started it, its workers inherit it."""
  pids = []
  for name in os.listdir("/proc"):
    if not name.isdigit():
      continue
    try:
      stat = open(f"/proc/{name}/stat").read()
    except OSError:
      continue
    state, _, _, session = stat[stat.rindex(")") + 2:].split()[:4]
    if int(session) == sid and state != "Z":
      pids.append(int(name))
  return pids


def shm_segments(pids) -> set[str]:
  """/dev/shm files that ``pids`` have mapped or open (and that still exist)."""
  found = set()
  for pid in pids:
    try:
      found |= {line.split()[-1] for line in open(f"/proc/{pid}/maps") if " /dev/shm/" in line}
      for fd in os.listdir(f"/proc/{pid}/fd"):
        target = os.readlink(f"/proc/{pid}/fd/{fd}")
        if target.startswith("/dev/shm/"):
          found.add(target)
    except OSError:
      continue
  return {path for path in found if os.path.exists(path)}


def test_kill9_of_trainer_leaves_no_worker_and_no_shared_memory(tmp_path, corpus_cache):
  workdir = tmp_path / "orphans"
  args = ["--config.train.steps=40", "--config.train.checkpoint_every=4", "--config.train.eval_every=1000",
          "--stall_after_save=4", "--config.data.num_workers=2"]
  proc = subprocess.Popen(main_cmd(workdir, corpus_cache, *args, module="tests.faults"), cwd=ROOT,
                          start_new_session=True,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  try:
    wait_for(lambda: (workdir / "checkpoints" / "4").is_dir(), proc)
    time.sleep(2)   # the workers refill their queues while the trainer stalls
    pids = session_processes(proc.pid)
    segments = shm_segments(pids)
    assert len(pids) >= 3, pids   # trainer, 2 workers (and multiprocessing's resource tracker)
    assert segments, "the loader passes batches through /dev/shm: some should be mapped"
    os.kill(proc.pid, signal.SIGKILL)   # the trainer only, as the OOM killer does
    proc.wait()
    t0 = time.time()
    while (session_processes(proc.pid) or any(os.path.exists(s) for s in segments)) and time.time() - t0 < 10:
      time.sleep(0.2)
    left = session_processes(proc.pid)
    assert not left, f"processes of the killed run still alive after 10 s: {left}"
    assert not [s for s in segments if os.path.exists(s)], "shared memory of the killed run not released"
  finally:
    for pid in session_processes(proc.pid):   # only this test's own processes
      os.kill(pid, signal.SIGKILL)
    if proc.poll() is None:
      proc.kill()
