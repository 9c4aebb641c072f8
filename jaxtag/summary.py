"""``python -m jaxtag.summary``, kept working: the same as ``jaxtag params`` (``jaxtag.models.params``)."""
if __name__ == "__main__":
  import runpy
  runpy.run_module("jaxtag.models.params", run_name="__main__", alter_sys=True)
