"""One small renderer per output format; the Jinja2 templates in templates/ do the text.

Every string that reaches a report may come from a hostile repo (a model card, a config, a file name), so each
format has one escaping rule applied to *every* `{{ … }}` in its templates, not filter by filter:

* html      Jinja2 autoescape (HTML entities);
* markdown  `escape_markdown` through the environment's `finalize` hook;
* text      `rich.markup.escape` through `finalize` (the text template produces rich markup);
* plain     (attribution) control characters made visible through `finalize`.

A template that needs to emit markup it built itself wraps it in `Raw`. JSON and SARIF are built as data and
serialised with `json.dumps`, never through a template.
"""

from __future__ import annotations

import functools
import io
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import scanner
from scanner.findings import Finding, Severity
from scanner.report.formats import BY_NAME, FORMATS
from scanner.report.paths import local_root, shown_report
from scanner.report.run_info import ScanRun
from scanner.report.sanitize import ZWSP, json_ready, terminal_safe, visible
from scanner.results import TargetReport

if TYPE_CHECKING:  # Jinja2 and rich load with the first template or text report: JSON and SARIF need neither
    from jinja2 import Environment, Template

    from scanner.attribution import AttributionBlock

TOOL_NAME = "originscan"
INFORMATION_URI = "https://github.com/originscan/originscan"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"
FINGERPRINT_KEY = "originscan/v1"
# A finding without a path is about the repo as a whole (licence, base model, attribution): all of that is
# declared in the model card, so SARIF points it at the card, README.md, line 1. GitHub code scanning needs a
# location for every result, and the card is the file a publisher edits to fix such a finding.
SARIF_DEFAULT_PATH = "README.md"

SEVERITY_ORDER = tuple(sorted(Severity, reverse=True))  # critical … info
SARIF_LEVEL = {
    Severity.critical: "error",
    Severity.high: "error",
    Severity.medium: "warning",
    Severity.low: "note",
    Severity.info: "note",
}
TEXT_STYLE = {
    Severity.critical: "bold white on red",
    Severity.high: "bold red",
    Severity.medium: "bold yellow",
    Severity.low: "cyan",
    Severity.info: "dim",
}


# -- templates -------------------------------------------------------------------------------------------------
def templates_dir() -> Path:
    """templates/: inside the package in a wheel (scanner/_data/templates), at the repo root in a checkout."""
    packaged = Path(scanner.__file__).parent / "_data" / "templates"
    return packaged if packaged.is_dir() else Path(scanner.__file__).parent.parent / "templates"


class Raw(str):
    """Text a renderer built itself (markup, a code span) that the template must emit unescaped."""


def clean(text: Any) -> str:
    """`text` with control characters and bidi overrides as visible escapes and lone surrogates replaced (see
    scanner.report.sanitize); line breaks are kept."""
    return visible(text)


_MD_SPECIAL = re.compile(r"([\\`*_~\[\]|])")


def escape_markdown(text: Any) -> str:
    """`text` made inert for GitHub-flavoured Markdown: safe in a table cell, a list item or a paragraph.

    Newlines become spaces (a newline ends a table row); `&`, `<`, `>` become entities (no raw HTML); the
    characters that open emphasis, code spans, links and table cells are backslash-escaped (so `[x](url)` is
    shown, not linked); `@name` gets a zero-width space after the `@` (no mention, no notification) and so does
    `#123` (no issue cross-reference); so do URLs after their scheme and `www` (GitHub autolinks bare URLs, and a
    URL in a message came from the repo).
    """
    s = clean(text)
    s = re.sub(r"\s*[\r\n]+\s*", " ", s)
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = _MD_SPECIAL.sub(r"\\\1", s)
    s = s.replace("@", "@\u200b")
    s = re.sub(r"(?i)\b([a-z][a-z0-9+.-]{1,15}):(?=//)", lambda m: m.group(1) + ZWSP + ":", s)
    s = re.sub(r"(?i)\bwww\.", "www" + ZWSP + ".", s)
    return re.sub(r"#(?=\d)", "#\u200b", s)


def one_line(text: Any, limit: int | None = None) -> str:
    """Whitespace collapsed to single spaces, shortened to `limit` characters with an ellipsis (the `cell` filter
    of Markdown templates; the environment escapes the result)."""
    s = re.sub(r"\s+", " ", "" if text is None else str(text)).strip()
    if limit is not None and len(s) > limit:
        s = s[: limit - 1].rstrip() + "…"
    return s


_SAFE_RULE = re.compile(r"[A-Za-z0-9_.\-]+")


def rule_code(rule: str) -> str:
    """A rule id as a Markdown code span when it is a plain id (escapes do not work inside a code span); otherwise
    plain text, which the environment escapes (the `code` filter of Markdown templates)."""
    return Raw(f"`{rule}`") if _SAFE_RULE.fullmatch(rule) else one_line(rule)


def _rich_escape(text: Any) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(terminal_safe(text))


def _plain(text: Any) -> str:
    return terminal_safe(text, multiline=True)


def _finalizer(escape: Callable[[Any], str]) -> Callable[[Any], Any]:
    from markupsafe import Markup

    def finalize(value: Any) -> Any:
        if value is None:
            return ""
        if isinstance(value, (Raw, Markup)):
            return value
        return escape(value)

    return finalize


def _html_autoescape(name: str | None) -> bool:
    # select_autoescape matches on the *extension* (".html"); our templates are named html.j2, so a name whose
    # dotted parts include "html" is escaped too.
    from jinja2 import select_autoescape

    if name is None:
        return False
    return select_autoescape(["html", "j2.html"])(name) or "html" in Path(name).name.lower().split(".")


@functools.cache
def environment(kind: str) -> Environment:
    """The Jinja2 environment for one family of templates: "html", "markdown", "text" or "plain"."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    common: dict[str, Any] = dict(
        loader=FileSystemLoader(str(templates_dir())),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    if kind == "html":
        return Environment(autoescape=_html_autoescape, finalize=_finalizer(clean), **common)
    escape = {"markdown": escape_markdown, "text": _rich_escape, "plain": _plain}[kind]
    env = Environment(autoescape=False, finalize=_finalizer(escape), **common)
    if kind == "markdown":
        env.filters.update(cell=one_line, code=rule_code)
    return env


def _template(kind: str, name: str) -> Template:
    return environment(kind).get_template(name)


# -- shared view model -----------------------------------------------------------------------------------------
def _rule_info(catalogue: Mapping[str, Any], rule_id: str) -> dict[str, Any]:
    rule = catalogue.get(rule_id)
    return {
        "title": getattr(rule, "title", None) or rule_id,
        "doc": getattr(rule, "doc", None) or "",
        "fix": getattr(rule, "fix", None) or "",
        "severity": getattr(rule, "severity", None),
    }


def _sorted(findings: Iterable[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (-int(f.severity), f.rule, f.path or "", f.line or 0, f.message))


def _location(f: Finding) -> str:
    if not f.path:
        return ""
    return f"{f.path}:{f.line}" if f.line is not None else f.path


def summary_counts(reports: list[TargetReport]) -> dict[str, int]:
    """Active findings per severity (critical first) and the number of suppressed findings."""
    counts = {s.name: 0 for s in SEVERITY_ORDER}
    suppressed = 0
    for r in reports:
        for f in r.findings:
            if f.suppressed is None:
                counts[f.severity.name] += 1
            else:
                suppressed += 1
    counts["suppressed"] = suppressed
    return counts


def summary_line(reports: list[TargetReport]) -> str:
    counts = summary_counts(reports)
    active = sum(counts[s.name] for s in SEVERITY_ORDER)
    n = len(reports)
    where = f"{n} target" + ("" if n == 1 else "s")
    if active:
        parts = ", ".join(f"{counts[s.name]} {s.name}" for s in SEVERITY_ORDER if counts[s.name])
        line = f"{active} finding{'' if active == 1 else 's'} ({parts}) in {where}"
    else:
        line = f"no findings in {where}"
    if counts["suppressed"]:
        line += f"; {counts['suppressed']} suppressed"
    errors = sum(1 for r in reports if r.error)
    if errors:
        line += f"; {errors} could not be read"
    return line


def _view(reports: list[TargetReport], catalogue: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Targets and findings as plain dicts for the templates (still unescaped: the environment escapes)."""
    out = []
    for r in reports:

        def item(f: Finding) -> dict[str, Any]:
            info = _rule_info(catalogue, f.rule)
            return {
                "rule": f.rule,
                "severity": f.severity.name,
                "sev": f.severity,
                "message": f.message,
                "path": f.path,
                "line": f.line,
                "location": _location(f),
                "title": info["title"],
                "doc": info["doc"],
                "fix": info["fix"],
                "suppressed": f.suppressed,
                "status": f.status,
            }

        active = [item(f) for f in _sorted(r.active())]
        suppressed = [item(f) for f in _sorted(f for f in r.findings if f.suppressed is not None)]
        counts = {s.name: sum(1 for f in active if f["sev"] == s) for s in SEVERITY_ORDER}
        out.append(
            {
                "target": r.target,
                "revision": r.revision,
                "error": r.error,
                "publisher": r.facts.publisher.describe()
                if r.facts is not None and r.facts.publisher is not None and r.facts.publisher.known
                else None,
                "active": active,
                "suppressed": suppressed,
                "counts": counts,
            }
        )
    return out


# -- JSON (contract) -------------------------------------------------------------------------------------------
def render_json(reports: list[TargetReport], catalogue: Mapping[str, Any], *, version: str) -> str:
    doc = {
        "tool": TOOL_NAME,
        "version": version,
        "targets": [r.to_json() for r in reports],
        "summary": summary_counts(reports),
    }
    return json.dumps(json_ready(doc), indent=2) + "\n"


# -- text (rich) -----------------------------------------------------------------------------------------------
def render_text(
    reports: list[TargetReport], catalogue: Mapping[str, Any], *, version: str, color: bool = False, width: int = 100
) -> str:
    from rich.console import Console
    from rich.padding import Padding
    from rich.text import Text

    targets = _view(reports, catalogue)
    for t in targets:
        for f in t["active"]:
            label = f["severity"].upper().ljust(8)
            f["badge"] = Raw(f"[{TEXT_STYLE[f['sev']]}]{label}[/]") if color else Raw(label)
    markup = _template("text", "text.j2").render(
        targets=targets, version=version, summary=summary_line(reports), color=color
    )
    buf = io.StringIO()
    console = Console(
        file=buf,
        force_terminal=color,
        color_system="standard" if color else None,
        no_color=not color,
        width=width,
        highlight=False,
        emoji=False,
        soft_wrap=False,
        legacy_windows=False,
    )
    # One line of markup at a time, its leading spaces kept as padding so that a long message wraps under
    # itself instead of at column 0.
    for line in markup.rstrip("\n").split("\n"):
        stripped = line.lstrip(" ")
        indent = len(line) - len(stripped)
        text = Text.from_markup(stripped, emoji=False)
        console.print(Padding(text, (0, 0, 0, indent), expand=False) if indent else text)
    return "\n".join(ln.rstrip() for ln in buf.getvalue().split("\n"))


# -- Markdown --------------------------------------------------------------------------------------------------
def render_markdown(reports: list[TargetReport], catalogue: Mapping[str, Any], *, version: str) -> str:
    targets = _view(reports, catalogue)
    for t in targets:
        for f in t["active"] + t["suppressed"]:
            # A rule id is ours, but only a plain one goes into a code span (escapes do not work inside one).
            f["rule_md"] = rule_code(f["rule"])
    return _template("markdown", "markdown.j2").render(targets=targets, version=version, summary=summary_line(reports))


# -- HTML ------------------------------------------------------------------------------------------------------
def render_html(
    reports: list[TargetReport], catalogue: Mapping[str, Any], *, version: str, run: ScanRun | None = None
) -> str:
    from scanner.report.html_view import html_view  # lineage graphs, per-layer plots, rules used

    targets = _view(reports, catalogue)
    return _template("html", "html.j2").render(
        targets=targets,
        version=version,
        summary=summary_line(reports),
        counts=summary_counts(reports),
        severities=[s.name for s in SEVERITY_ORDER],
        **html_view(reports, targets, catalogue, run),
    )


# -- SARIF 2.1.0 -----------------------------------------------------------------------------------------------
def _pascal(rule_id: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in re.split(r"[^A-Za-z0-9]+", rule_id) if p) or "Rule"


def _is_remote(target: str) -> bool:
    return target.startswith(("hf:", "github:")) or "://" in target


def _target_prefix(target: str, base: Path | None) -> str:
    """The repo-relative folder of a local target (so `scan models/x` yields `models/x/README.md`), or ""."""
    if _is_remote(target):
        return ""
    p = Path(target)
    if p.is_absolute():
        try:
            p = p.resolve().relative_to((base or Path.cwd()).resolve())
        except (ValueError, OSError):
            return ""
    posix = PurePosixPath(p.as_posix())
    if ".." in posix.parts:
        return ""
    s = str(posix)
    return "" if s == "." else s


def _artifact_uri(prefix: str, path: str | None) -> str:
    rel = (path or SARIF_DEFAULT_PATH).replace("\\", "/").lstrip("/")
    full = f"{prefix}/{rel}" if prefix else rel
    return quote(full, safe="/")


def fingerprint(target: str, f: Finding) -> str:
    """SARIF's partialFingerprints value: the finding's key (scanner.findings.Finding.key)."""
    return f.key(target)


def sarif_log(
    reports: list[TargetReport], catalogue: Mapping[str, Any], *, version: str, base: Path | None = None
) -> dict[str, Any]:
    rule_ids = sorted({f.rule for r in reports for f in r.findings})
    index = {rid: i for i, rid in enumerate(rule_ids)}
    severity_of: dict[str, Severity] = {}
    for r in reports:
        for f in r.findings:
            severity_of.setdefault(f.rule, f.severity)
    rules = []
    for rid in rule_ids:
        info = _rule_info(catalogue, rid)
        sev = info["severity"] if isinstance(info["severity"], Severity) else severity_of[rid]
        rules.append(
            {
                "id": rid,
                "name": _pascal(rid),
                "shortDescription": {"text": clean(info["title"])},
                "fullDescription": {"text": clean(info["doc"] or info["title"])},
                "help": {"text": clean(info["fix"] or info["doc"] or info["title"])},
                "defaultConfiguration": {"level": SARIF_LEVEL[sev]},
                "properties": {"tags": [rid.split(".", 1)[0]], "severity": sev.name},
            }
        )
    results = []
    notifications = []
    for r in reports:
        prefix = _target_prefix(r.target, base)
        if r.error:
            notifications.append({"level": "error", "message": {"text": clean(f"{r.target}: {r.error}")}})
        for f in _sorted(r.findings):
            result: dict[str, Any] = {
                "ruleId": f.rule,
                "ruleIndex": index[f.rule],
                "level": SARIF_LEVEL[f.severity],
                "message": {"text": clean(f.message) or f.rule},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": _artifact_uri(prefix, f.path)},
                            "region": {"startLine": f.line if f.line and f.line >= 1 else 1},
                        }
                    }
                ],
                "partialFingerprints": {FINGERPRINT_KEY: fingerprint(r.target, f)},
                "properties": {"severity": f.severity.name, "target": r.target},
            }
            if r.revision:
                result["properties"]["revision"] = r.revision
            if f.suppressed is not None:
                result["suppressions"] = [{"kind": "external", "justification": clean(f.suppressed)}]
            if f.status in ("new", "existing"):
                result["baselineState"] = "new" if f.status == "new" else "unchanged"
            results.append(result)
    invocation: dict[str, Any] = {"executionSuccessful": not any(r.error for r in reports)}
    if notifications:
        invocation["toolExecutionNotifications"] = notifications
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": TOOL_NAME,
                        "version": version,
                        "semanticVersion": version,
                        "informationUri": INFORMATION_URI,
                        "rules": rules,
                    }
                },
                "invocations": [invocation],
                "columnKind": "unicodeCodePoints",
                "results": results,
            }
        ],
    }


def render_sarif(reports: list[TargetReport], catalogue: Mapping[str, Any], *, version: str) -> str:
    return json.dumps(json_ready(sarif_log(reports, catalogue, version=version)), indent=2) + "\n"


# -- entry points ----------------------------------------------------------------------------------------------
def render(
    reports: list[TargetReport],
    fmt: str,
    catalogue: Mapping[str, Any],
    *,
    version: str,
    color: bool = False,
    width: int = 100,
    run: ScanRun | None = None,
) -> str:
    """The report for `reports` in format `fmt` (one of FORMATS, registered in scanner/report/formats.py).

    `run` (when, with what, against which policy) goes to the formats that show it. Every format sees the reports
    as `shown_report` writes them, relative to their common scan root: no report carries the scanner's absolute
    paths, and two folders of the same name stay apart."""
    spec = BY_NAME.get(fmt)
    if spec is None:
        raise ValueError(f"unknown report format {fmt!r} (expected one of: {', '.join(FORMATS)})")
    options: dict[str, Any] = {"color": color, "width": width} if spec.terminal else {}
    if spec.run_info:
        options["run"] = run
    root = local_root(r.target for r in reports)
    reports = [shown_report(r, root=root) for r in reports]
    args = (reports, catalogue) if spec.catalogue else (reports,)
    return str(spec.load()(*args, version=version, **options))


def render_attribution(blocks: Sequence[AttributionBlock]) -> str:
    """The NOTICE / attribution text a derivative must ship: one section per upstream licence (plain text)."""
    sections = []
    for b in blocks:
        naming = b.naming
        if isinstance(naming, Mapping):
            text = naming.get("text") or ""
            rule = naming.get("rule")
            naming = (
                (
                    f'The model\'s name must begin with "{text}".'
                    if rule == "prefix"
                    else f'The model\'s name must include "{text}".'
                    if rule == "contains"
                    else f'Naming rule: "{text}".'
                )
                if text
                else None
            )
        sections.append(
            {
                "license_id": b.license_id,
                "license_name": b.license_name or b.license_id,
                "upstream": ", ".join(b.upstream),
                "notice": b.notice,
                "attribution": b.attribution,
                "naming": naming,
                "license_copy": b.license_copy,
                "use_restrictions": b.use_restrictions,
                "mark_modified": b.mark_modified,
                "url": b.url,
                "terms": b.terms,
            }
        )
    return _template("plain", "attribution.j2").render(blocks=sections)


__all__ = [
    "FORMATS",
    "Raw",
    "clean",
    "environment",
    "escape_markdown",
    "fingerprint",
    "render",
    "render_attribution",
    "render_html",
    "render_json",
    "render_markdown",
    "render_sarif",
    "render_text",
    "sarif_log",
    "summary_counts",
    "summary_line",
    "templates_dir",
]
