"""``python -m jaxtag.evaluate``, kept working: the same as ``jaxtag evaluate`` (``jaxtag.evaluation.evaluate``)."""
if __name__ == "__main__":
  import runpy
  runpy.run_module("jaxtag.evaluation.evaluate", run_name="__main__", alter_sys=True)
