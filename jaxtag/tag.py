"""``python -m jaxtag.tag``, kept working: the same as ``jaxtag tag`` (``jaxtag.serving.tag``)."""
if __name__ == "__main__":
  import runpy
  runpy.run_module("jaxtag.serving.tag", run_name="__main__", alter_sys=True)
