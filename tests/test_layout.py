"""The package's shape, checked: folders import only the folders before them in the data's flow, no module
imports another in a cycle, nothing in ``jaxtag/`` imports the top-level ``configs``, and ``jaxtag --help``
lists every subcommand."""
import ast
import os
import subprocess
import sys

from conftest import ROOT

PKG = os.path.join(ROOT, "jaxtag")
# folder -> the folders it may import (besides itself); order = the data's flow (jaxtag/__init__.py)
ALLOWED = {
  "core": set(),
  "data": {"core"},
  "models": {"core"},
  "training": {"core", "data", "models"},
  "serving": {"core", "data", "models", "training"},
  "evaluation": {"core", "data", "models", "training", "serving"},
  "analyze": {"core", "data", "models", "training", "serving", "evaluation"},
  "tools": {"core", "data", "models", "training", "serving", "evaluation", "analyze"},
}
# The one named exception: the training loop validates through the one inference path.
EXCEPTIONS = {("jaxtag.training.train", "jaxtag.serving.inference")}


def _modules():
  for d, _, files in os.walk(PKG):
    for f in files:
      if f.endswith(".py"):
        path = os.path.join(d, f)
        name = os.path.relpath(path[:-3], ROOT).replace(os.sep, ".").removesuffix(".__init__")
        yield name, ast.parse(open(path).read(), path)


def _imports(tree, top_level_only=False):
  """(imported module, line) pairs; ``from jaxtag.x import y`` counts as ``jaxtag.x.y`` when y is a module."""
  nodes = tree.body if top_level_only else ast.walk(tree)
  for node in nodes:
    if isinstance(node, ast.Import):
      yield from ((a.name, node.lineno) for a in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      for a in node.names:
        full = f"{node.module}.{a.name}"
        yield (full if os.path.exists(os.path.join(ROOT, *full.split(".")) + ".py") else node.module), node.lineno


def _folder(module):
  parts = module.split(".")
  return parts[1] if len(parts) > 2 else None   # None: jaxtag itself or a top-level entry module


MODULES = dict(_modules())


def test_folders_import_only_the_folders_before_them():
  wrong = []
  for name, tree in MODULES.items():
    src = _folder(name)
    if src is None:
      continue
    for target, line in _imports(tree):
      dst = _folder(target) if target.startswith("jaxtag.") else None
      if dst and dst != src and dst not in ALLOWED[src] and (name, target) not in EXCEPTIONS:
        wrong.append(f"{name}:{line} imports {target}")
  assert not wrong, "\n".join(wrong)


def test_no_module_imports_itself_through_a_cycle():
  graph = {name: {t for t, _ in _imports(tree, top_level_only=True) if t in MODULES} for name, tree in MODULES.items()}
  state, cycles = {}, []

  def visit(node, stack):
    state[node] = "open"
    for nxt in sorted(graph[node]):
      if state.get(nxt) == "open":
        cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
      elif nxt not in state:
        visit(nxt, stack + [nxt])
    state[node] = "done"

  for name in sorted(graph):
    if name not in state:
      visit(name, [name])
  assert not cycles, "\n".join(cycles)


def test_nothing_in_the_package_imports_configs():
  hits = [f"{name}:{line}" for name, tree in MODULES.items() for target, line in _imports(tree)
          if target == "configs" or target.startswith("configs.")]
  assert not hits, hits


def test_every_folder_says_what_lives_there_and_what_it_may_import():
  for folder in ALLOWED:
    doc = ast.get_docstring(MODULES[f"jaxtag.{folder}"]) or ""
    assert "import" in doc, f"jaxtag/{folder}/__init__.py: no docstring naming what it may import"


def test_jaxtag_help_lists_the_subcommands():
  from jaxtag.__main__ import SUBCOMMANDS
  out = subprocess.run([sys.executable, "-m", "jaxtag", "--help"], capture_output=True, text=True, cwd=ROOT)
  assert out.returncode == 0
  for name in ("train", "evaluate", "predict", "tag", "export", "study", "pack", "analyze"):
    assert f"  {name} " in out.stdout, out.stdout
  assert set(SUBCOMMANDS) <= set(out.stdout.split())
  for name, (module, _) in SUBCOMMANDS.items():   # every subcommand names a real module
    assert module in MODULES, name
  bad = subprocess.run([sys.executable, "-m", "jaxtag", "trian"], capture_output=True, text=True, cwd=ROOT)
  assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "choose from" in bad.stderr
