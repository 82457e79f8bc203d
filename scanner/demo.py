"""`originscan demo`: register the bundled upstreams in a throw-away index, then scan every example repo."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from scanner.errors import UsageError
from scanner.pipeline import scan_target
from scanner.policy import load_policy
from scanner.provenance.code import CodeStore
from scanner.provenance.index import Index
from scanner.provenance.model import LiveModel
from scanner.results import TargetReport
from scanner.sources.local import LocalSource


def examples_dir() -> Path:
    here = Path(__file__).resolve().parent.parent / "examples"
    if not here.is_dir():
        raise UsageError("the bundled examples are not installed (run `make demo` from a source checkout)")
    return here


def run_demo(log: Callable[[str], object] | None = None) -> list[TargetReport]:
    """Register the bundled stand-in upstreams in a throw-away index, then scan every example. `log` is told which
    stand-ins were registered, and why: they are tiny models under the real upstreams' names, not the real ones."""
    root = examples_dir()
    registered: list[str] = []
    with tempfile.TemporaryDirectory(prefix="originscan-demo-") as tmp:
        index = Index(Path(tmp) / "index.sqlite")
        try:
            for up in sorted((root / "upstreams").iterdir()) if (root / "upstreams").is_dir() else []:
                snap = LocalSource(str(up), target=f"examples/upstreams/{up.name}").snapshot()
                model = LiveModel.from_snapshot(snap)
                name = (up / "NAME").read_text().strip() if (up / "NAME").is_file() else up.name
                lic = (up / "LICENSE_ID").read_text().strip() if (up / "LICENSE_ID").is_file() else None
                index.add(name, model, lic, snap.target, None)
                registered.append(f"{name} ({lic or 'licence unknown'}, examples/upstreams/{up.name})")
                model.close()
                if snap.code:  # its modelling code too; CODE_LICENSE_ID when the code's licence is not the weights'
                    code_lic = up / "CODE_LICENSE_ID"
                    CodeStore(index.db).add(
                        name, snap.code, code_lic.read_text().strip() if code_lic.is_file() else lic
                    )
            if log is not None and registered:
                log(
                    f"originscan demo: registered {len(registered)} stand-in upstreams in a throw-away index: "
                    + "; ".join(registered)
                    + ". They are tiny models under the real upstreams' names (the real weights are gigabytes and"
                    " need the network), so that the examples' weights and code have something to be compared"
                    " with; your own scans use the index that `originscan index update` builds."
                )
            policy = load_policy(str(root / ".originscan.yml") if (root / ".originscan.yml").is_file() else None)
            reports = []
            for repo in sorted(
                p for p in root.iterdir() if p.is_dir() and p.name != "upstreams" and not p.name.startswith((".", "_"))
            ):
                report = scan_target(str(repo), policy, index)
                report.target = f"examples/{repo.name}"
                reports.append(report)
            return reports
        finally:
            index.close()
