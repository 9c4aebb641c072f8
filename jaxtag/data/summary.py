"""``python -m jaxtag.data.summary``, kept working: the same as ``jaxtag data-stats`` (``jaxtag.data.stats``)."""
if __name__ == "__main__":
  import runpy
  runpy.run_module("jaxtag.data.stats", run_name="__main__", alter_sys=True)
