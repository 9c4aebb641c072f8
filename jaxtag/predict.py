"""``python -m jaxtag.predict``, kept working: the same as ``jaxtag predict`` (``jaxtag.serving.predict``)."""
if __name__ == "__main__":
  import runpy
  runpy.run_module("jaxtag.serving.predict", run_name="__main__", alter_sys=True)
