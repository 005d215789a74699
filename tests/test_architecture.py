"""The package's floor plan: no import cycle, every import points down the layers, small files."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import aekit

PACKAGE = Path(aekit.__file__).parent

# Bottom to top. A module may import modules of its own layer or below, never above; the import
# graph over all modules has no cycle.
LAYERS = [
    {"version", "errors"},
    {"files", "typed", "metrics", "configs", "progress", "memory"},
    {"data", "noise"},
    {"models"},
    {"config"},
    {"config_file"},
    {"pipeline", "training", "codes"},
    {"run_tables", "run_folder", "run_data"},
    {"report"},
    {"inference", "baselines"},
    {"evaluation"},
    {"run_record", "resume", "fine_tune"},
    {"run", "latent", "export"},
    {"sklearn", "anomaly"},
    {"cli"},
    {"__init__", "__main__"},
]
MAX_LINES = 310  # "no source file over about 300 lines"


def modules() -> dict[str, Path]:
    return {".".join(p.relative_to(PACKAGE).with_suffix("").parts): p for p in PACKAGE.rglob("*.py")}


def imports(name: str, known: dict[str, Path]) -> set[str]:
    """The aekit modules ``name`` imports, at the top of the file or inside functions."""
    package = name.split(".")[:-1]  # a.b.c -> a.b; a.b.__init__ -> a.b
    found = set()
    for node in ast.walk(ast.parse(known[name].read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)]
            target = [*base, *(node.module.split(".") if node.module else [])]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "aekit":
            target = node.module.split(".")[1:]
        elif isinstance(node, ast.Import):
            found |= {_resolve(a.name.split(".")[1:], known) for a in node.names if a.name.split(".")[0] == "aekit"}
            continue
        else:
            continue
        for alias in node.names:  # `from . import conv` imports the module aekit.models.conv
            sub = _resolve([*target, alias.name], known)
            found.add(sub if sub in known else _resolve(target, known))
    return found - {name}


def _resolve(parts: list[str], known: dict) -> str:
    mod = ".".join(parts)
    return mod if mod in known else f"{mod}.__init__" if mod else "__init__"


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, known) for name in known}


def layer(name: str) -> int:
    top = name.split(".")[0]
    return next(i for i, group in enumerate(LAYERS) if top in group)


def test_the_import_graph_has_no_cycle():
    g = graph()
    state: dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(g.get(node, ())):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*path, node, nxt]))
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for node in sorted(g):
        if node not in state:
            visit(node, [])


def test_every_import_points_down_the_layers():
    upward = [(a, b) for a, targets in graph().items() for b in targets if layer(b) > layer(a)]
    assert upward == []


def test_only_optional_or_slow_dependencies_are_imported_inside_functions():
    optional = {"skimage", "bm3d", "onnx", "onnxruntime", "onnxscript", "torch.utils.tensorboard", "sklearn", "joblib"}
    inside = []
    for name, path in modules().items():
        for fn in ast.walk(ast.parse(path.read_text())):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom):
                    mods = ["." * node.level + (node.module or "")]
                elif isinstance(node, ast.Import):
                    mods = [a.name for a in node.names]
                else:
                    continue
                inside += [(name, m) for m in mods if not any(m == o or m.startswith(o + ".") for o in optional)]
    assert inside == []


def test_no_source_file_is_much_over_300_lines():
    long = {name: n for name, p in modules().items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_the_command_line_starts_without_scikit_learn(root):
    """scikit-learn takes about a second to import: every command (and every worker process that spawn starts)
    would pay it, where only the Olivetti faces, a PCA and the estimator need it."""
    code = "import sys, aekit.cli; print(sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'scipy')))"
    r = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout[-2000:] + r.stderr[-2000:]


POSIX_ONLY = ("fcntl", "resource")  # absent on Windows: the package and its tests import them guarded

COLLECT_WITHOUT = """
import sys
sys.modules.update(dict.fromkeys(sys.argv[1].split(",")))  # None in sys.modules: an ImportError, as on Windows
import pytest
sys.exit(pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", sys.argv[2]]))
"""


@pytest.mark.slow
def test_the_tests_are_collected_without_posix_only_modules(root):
    r = subprocess.run([sys.executable, "-c", COLLECT_WITHOUT, ",".join(POSIX_ONLY), str(root / "tests")],
                       cwd=root, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
