"""The main job for one target: source → evidence → checks → findings (policy applied)."""
from __future__ import annotations

from scanner.checks.engine import Context, WeightMatch, run_checks
from scanner.errors import SourceError, UsageError
from scanner.evidence.card import read_card
from scanner.evidence.config import match_config
from scanner.evidence.licenses import detect_licenses
from scanner.evidence.tokenizer import match_tokens, special_tokens
from scanner.findings import Finding, Severity, TargetReport
from scanner.knowledge import knowledge_base
from scanner.policy import Policy
from scanner.provenance.compare import compare_views
from scanner.provenance.index import Index
from scanner.provenance.model import LiveModel
from scanner.sources.interface import Snapshot


def open_snapshot(target: str) -> Snapshot:
    try:
        from scanner.sources.resolve import open_source
    except ImportError:  # remote sources not installed: local folders only
        from scanner.sources.local import LocalSource

        if target.startswith(("hf:", "github:")):
            raise UsageError(f"{target}: remote targets are not supported by this build") from None
        return LocalSource(target).snapshot()
    return open_source(target).snapshot()


def weight_matches(snap: Snapshot, index: Index | None) -> tuple[list[WeightMatch], list[Finding]]:
    """Compare the snapshot's weights with every registered upstream (their side is read from the index)."""
    if index is None:
        return [], []
    registered = [r for r in index.models() if r.target != snap.target]
    if not registered or not snap.weight_files():
        return [], []
    model = LiveModel.from_snapshot(snap)
    problems: list[Finding] = []
    try:
        exact = [WeightMatch(reg.name, reg.license, compare_views(model, view, snap.target, reg.name))
                 for reg in registered if model.file_hashes & (view := index.view(reg)).file_hashes]
        if exact or not model.tensors:  # identical files are decided from hashes (LFS oids), with no weight read
            if exact:
                return exact, problems
        if not model.tensors:  # malformed headers are reported by the weights checks; say what was skipped
            if not any("header" in p or "offsets" in p or "bytes" in p for p in model.problems):
                detail = "; ".join(model.problems) or "no safetensors weights"
                problems.append(Finding("source.unverifiable", Severity.medium,
                                        f"weights could not be compared with the index: {detail}"))
            return [], problems
        matches = [WeightMatch(reg.name, reg.license, compare_views(model, index.view(reg), snap.target, reg.name))
                   for reg in registered]
        return matches, problems
    finally:
        model.close()


def build_context(snap: Snapshot, policy: Policy) -> Context:
    kb = knowledge_base()
    tokens = special_tokens(snap)
    return Context(snap=snap, kb=kb, policy=policy, card=read_card(snap), detections=detect_licenses(snap, kb),
                   config_matches=match_config(snap.jsons.get("config.json"), kb),
                   token_matches=match_tokens(tokens, kb), special_tokens=tokens)


def scan_snapshot(snap: Snapshot, policy: Policy, index: Index | None = None) -> TargetReport:
    ctx = build_context(snap, policy)
    ctx.weight_matches, weight_problems = weight_matches(snap, index)
    findings = run_checks(ctx) + weight_problems
    policy.apply(snap.target, findings)
    findings.sort(key=lambda f: (-f.severity, f.rule, f.path or ""))
    return TargetReport(snap.target, findings, revision=snap.revision)


def scan_target(target: str, policy: Policy, index: Index | None = None) -> TargetReport:
    """Never raises for a bad repo: an unreadable target becomes a report with one source finding."""
    try:
        snap = open_snapshot(target)
    except SourceError as exc:
        f = Finding(exc.rule, Severity.medium, str(exc))
        return TargetReport(target, [f], error=str(exc))
    return scan_snapshot(snap, policy, index)
