"""`originscan watch`'s text report (templates/watch.txt.j2) from the typed report (scanner/watch_report.py).

Names that come from the Hub (repos, watched models, the bases a card names, error messages) are made terminal-safe
on one line here; the template lays the lines out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scanner.report.render import Raw, environment
from scanner.report.sanitize import terminal_safe
from scanner.watch_report import WEIGHTS_DERIVED, Probed, WatchReport

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
    behaviour: str | None = None  # `watch --probe`: the behaviour verdict beside the weight verdict


@dataclass(frozen=True)
class BehaviourLine:
    """A repo found by its behaviour alone (`watch --probe`)."""

    tag: str
    repo: str
    watched: str
    behaviour: str


def _safe(text: Any) -> Raw:
    return Raw(terminal_safe(text))


def behaviour_text(probed: Probed) -> str:
    """One line for a probe's outcome: the verdict, its p-value and false-positive rate, and the strongest test's
    detail; or why the repo was not probed."""
    v = probed.behaviour
    if v is None:
        return f"not probed ({terminal_safe(probed.skipped or 'no reason given')})"
    return terminal_safe(f"{v.verdict} (p = {v.p_value:.1e}, false-positive rate {v.alpha:g}; {v.reason})")[:400]


def _probe_summary(report: WatchReport) -> str | None:
    if report.probed is None:
        return None
    probed = report.probed
    verdicts = [p for p in probed if p.behaviour is not None]
    derived = sum(p.behaviour is not None and p.behaviour.verdict == "derived" for p in probed)
    return (
        f"{len(verdicts)} behaviour verdict(s) ({derived} derived), {len(probed) - len(verdicts)} not probed"
        if probed
        else "nothing to probe"
    )


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
            Raw(behaviour_text(probed)) if (probed := report.behaviour_of(s)) else None,
        )
        for s in report.ordered_suspects()
    ]
    behaving = [
        BehaviourLine(
            "DECLARED  " if p.declared else "UNDECLARED", _safe(p.repo), _safe(p.watched), Raw(behaviour_text(p))
        )
        for p in sorted(report.probed or [], key=lambda p: (p.declared, p.repo, p.watched))
        if p.weights != WEIGHTS_DERIVED and p.behaviour is not None and p.behaviour.verdict == "derived"
    ]
    st = report.stats
    return (
        environment("plain")
        .get_template("watch.txt.j2")
        .render(
            watched=len(report.watched),
            shard=Raw(report.shard) if report.shard else None,
            suspects=suspects,
            behaving=behaving,
            probe=_probe_summary(report),
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
