"""The benchmark scripts (run on demand, never in CI) still import: every aekit name they use exists."""

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPTS = sorted(p.name for p in (Path(__file__).parents[1] / "benchmarks").glob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_benchmark_script_imports(root, script, monkeypatch):
    monkeypatch.syspath_prepend(str(root / "benchmarks"))  # their shared helpers: benchmarks/common.py
    spec = importlib.util.spec_from_file_location(f"benchmark_{script[:-3]}", root / "benchmarks" / script)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)  # the scripts run only under __main__
    assert script in ("common.py", "naive_reference.py") or callable(getattr(module, "main", None))  # helpers
