"""``python -m jaxtag.study``, kept working: the same as ``jaxtag study`` (``jaxtag.analyze.study``)."""
if __name__ == "__main__":
  import runpy
  runpy.run_module("jaxtag.analyze.study", run_name="__main__", alter_sys=True)
