"""`originscan watch`'s text report (templates/watch.txt.j2) from the typed report (scanner/watch_report.py).

Names that come from the Hub (repos, watched models, the bases a card names, error messages) are made terminal-safe
on one line here; the template lays the lines out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scanner.report.render import Raw, environment
from scanner.report.sanitize import terminal_safe
from scanner.watch_report import WatchReport

MAX_ERRORS = 20  # errors listed in the text report (the JSON report has them all)


@dataclass(frozen=True)
class SuspectLine:
    tag: str
    repo: str
    watched: str
    log10_p: str
    score: str
    link: str
    declared: bool
    declared_as: str


def _safe(text: Any) -> Raw:
    return Raw(terminal_safe(text))


def watch_text(report: WatchReport) -> str:
    suspects = [
        SuspectLine(
            "DECLARED  " if s.declared else "UNDECLARED",
            _safe(s.repo),
            _safe(s.watched),
            f"{s.verdict.log10_p_value:.1f}",
            f"{s.verdict.score:.2f}",
            Raw(s.links["repo"]),
            s.declared,
            Raw(", ".join(terminal_safe(b) for b in s.declared_as)),
        )
        for s in report.ordered_suspects()
    ]
    st = report.stats
    return (
        environment("plain")
        .get_template("watch.txt.j2")
        .render(
            watched=len(report.watched),
            shard=Raw(report.shard) if report.shard else None,
            suspects=suspects,
            judged=bool(st.listed or report.complete),
            errors=[{"repo": _safe(e["repo"]), "message": _safe(e["message"])} for e in report.errors[:MAX_ERRORS]],
            st=st,
            out={k: st.ruled_out.get(k, 0) for k in ("listing", "config", "header", "rows")},
            weight_bytes=f"{st.weight_bytes_read:,}",
            seconds=f"{st.seconds:.1f}",
            complete=report.complete,
            watermark=Raw(str(report.watermark)),
            stopped=Raw(str(report.stopped)),
        )
    )


__all__ = ["watch_text"]
