"""Imports only run downwards (bench/refactor/import_graph.py's LAYERS): no package imports one in a higher layer, not
even for annotations, no package-level cycle, every package has its layer, and no module borrows another's private
helpers, except the ones listed below (not yet given a public name)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("import_graph", ROOT / "bench" / "refactor" / "import_graph.py")
assert _spec is not None and _spec.loader is not None
import_graph = importlib.util.module_from_spec(_spec)
sys.modules["import_graph"] = import_graph  # dataclasses look their module up while the class is made
_spec.loader.exec_module(import_graph)


@pytest.fixture(scope="module")
def graph():
    return import_graph.graph(ROOT)


def test_imports_only_run_downwards(graph):
    assert graph.upward() == []


def test_no_package_level_cycle(graph):
    assert graph.cycles() == []


def test_every_package_has_a_layer(graph):
    assert graph.unlayered() == []


def test_no_private_helper_is_borrowed_across_modules(graph):
    # provenance/update.py and evidence/datasets.py once read the Hub through sources/hf.py's private helpers.
    assert list(graph.private) == []


def write(root: Path, rel: str, text: str) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")


def test_the_graph_finds_an_upward_import_a_cycle_and_a_borrowed_helper(tmp_path):
    """The checks above can fail: a tree where provenance imports checks (under TYPE_CHECKING, lazily inside a
    function or relatively), checks imports provenance, and report borrows a check's private helper."""
    write(tmp_path, "scanner/__init__.py", "")
    write(tmp_path, "scanner/checks/__init__.py", "")
    write(tmp_path, "scanner/checks/weights.py", "from scanner.provenance.result import Verdict\n\ndef _kind(): ...\n")
    write(
        tmp_path,
        "scanner/provenance/verdicts.py",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..checks.weights import _kind\n",
    )
    write(tmp_path, "scanner/provenance/cache.py", "def f():\n    import scanner.checks.engine\n")
    write(tmp_path, "scanner/report/lineage_graph.py", "from scanner.checks.weights import _kind\n")
    write(tmp_path, "scanner/newthing.py", "")
    g = import_graph.graph(tmp_path)
    assert g.edges[("provenance", "checks")] == 2 and ("provenance", "checks") in g.upward()
    assert ("checks", "provenance") not in g.upward()  # downward
    assert g.cycles() == [["checks", "provenance"]]
    assert ("scanner.report.lineage_graph", "scanner.checks.weights._kind") in g.private
    assert ("scanner.provenance.verdicts", "scanner.checks.weights._kind") in g.private
    assert g.unlayered() == ["newthing"]
