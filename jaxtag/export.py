"""``python -m jaxtag.export``, kept working: the same as ``jaxtag export`` (``jaxtag.serving.export``)."""
if __name__ == "__main__":
  import runpy
  runpy.run_module("jaxtag.serving.export", run_name="__main__", alter_sys=True)
