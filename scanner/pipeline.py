"""The main job for one target: source → evidence → checks → findings (policy applied)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

from scanner.checks.engine import Context, run_checks
from scanner.errors import SourceError
from scanner.evidence.card import read_card
from scanner.evidence.config import match_config
from scanner.evidence.gguf import read_gguf_facts
from scanner.evidence.licenses import detect_licenses
from scanner.evidence.publisher import apply_repo_id, resolve_publisher
from scanner.evidence.tokenizer import match_tokens, special_tokens
from scanner.findings import Finding
from scanner.knowledge import finding, knowledge_base
from scanner.policy import Policy
from scanner.provenance.code import CodeStore, code_matches
from scanner.provenance.result import WeightMatch
from scanner.provenance.verdicts import remembered
from scanner.results import TargetFacts, TargetReport
from scanner.sources.interface import Snapshot
from scanner.sources.resolve import open_source

if TYPE_CHECKING:
    from scanner.provenance.behaviour import BehaviourVerdict
    from scanner.provenance.index import Index


def open_snapshot(target: str, hash_weights: bool = True) -> Snapshot:
    """hash_weights=False skips hashing local weight files whole: their sha256 is only worth having when free."""
    return open_source(target, hash_weights=hash_weights).snapshot()


def weight_matches(snap: Snapshot, index: Index | None) -> tuple[list[WeightMatch], list[Finding]]:
    """Compare the snapshot's weights with the registered upstreams (their side is read from the index): exact
    copies by hash, then only the upstreams that header facts and the sketch cannot rule out (see search.py)."""
    files = snap.weight_files()
    if not files:
        return [], []
    if index is None:
        if all(f.lfs_pointer for f in files):
            why = "no fingerprint index, and the weight files are Git LFS pointers (not fetched)"
            return [], [not_compared(snap, why, "git lfs pull && originscan index update")]
        return [], [not_compared(snap, "no fingerprint index (none given, none at the default location)")]
    if not index.candidates(exclude_target=snap.target):
        return [], [not_compared(snap, f"the fingerprint index {index.path} registers no upstream")]
    # The weight readers (numpy under them) load only when weights are compared, not when no index is given or
    # when the verdicts are remembered (an unchanged re-scan).
    from scanner.provenance.search import find_matches, first_read_bytes
    from scanner.provenance.views import open_model

    # A small model's header and head rows; a wider one's too when an upstream of its width will be screened and
    # its safetensors are one file (each shard would get the same first read, and only one holds the rows).
    one_file = sum(f.path.endswith(".safetensors") for f in files) == 1
    candidates = index.candidates(exclude_target=snap.target) if one_file else []
    widths = {c.hidden for c in candidates if c.kind == "rows" and c.hidden}
    snap.first_read = first_read_bytes(snap.jsons.get("config.json"), widths)
    model = open_model(snap)
    try:
        matches, stats = find_matches(model, index, snap.target)
        if not model.tensors and not matches and index.candidates(exclude_target=snap.target):
            # Without readable tensors only identical files (hashes from LFS or the Hub) can be decided.
            if model.malformed:  # already a source.malformed finding from the weights checks
                return [], []
            detail = "; ".join(model.problems) or "no safetensors weights"
            return [], [finding("source.unverifiable", f"weights could not be compared with the index: {detail}")]
        found = [WeightMatch(reg.name, reg.license, verdict) for reg, verdict in matches]
        if (
            model.tensors
            and not model.structure.token_matrices
            and model.problems
            and not any(v.verdict == "derived" for _, v in matches)
            and index.candidates(exclude_target=snap.target)
        ):
            # Token matrices quantized in a form that cannot be read (a bitsandbytes 4-bit embedding, a GGUF type
            # the gguf package cannot dequantize): the weights were not tested, which is not a pass.
            return found, [
                finding(
                    "source.unverifiable", f"weights could not be compared with the index: {'; '.join(model.problems)}"
                )
            ]
        if model.tensors and not matches and stats.registered and stats.ruled_out_by_headers == stats.registered:
            hidden = model.structure.hidden
            return found, [
                not_compared(
                    snap,
                    f"none of the {stats.registered} registered upstreams has weights of this shape"
                    + (f" (hidden size {hidden})" if hidden else ""),
                    "originscan index add hf:OWNER/NAME",
                )
            ]
        return found, []
    finally:
        model.close()


def not_compared(snap: Snapshot, why: str, command: str = "originscan index update") -> Finding:
    """Weight provenance was not checked: said, with the reason and the command that fixes it, never a silent pass."""
    return finding(
        "weights.not_compared",
        f"the weights were not compared with any upstream: {why}; run `{command}`",
        path=snap.weight_files()[0].path,
        reason=why,
        command=command,
    )


def build_context(snap: Snapshot, policy: Policy) -> Context:
    kb = knowledge_base()
    gguf = read_gguf_facts(snap)
    # A GGUF-only repo's architecture and tokenizer are in the GGUF header: the same evidence as config.json and
    # tokenizer_config.json, used when those files are absent.
    tokens = special_tokens(snap) or (gguf.special_tokens if gguf else {})
    config: object = snap.jsons.get("config.json")
    if config is None and gguf is not None:
        config = gguf.config
    return Context(
        snap=snap,
        kb=kb,
        policy=policy,
        card=read_card(snap),
        detections=detect_licenses(snap, kb),
        config_matches=match_config(config, kb),
        token_matches=match_tokens(tokens, kb),
        special_tokens=tokens,
        gguf=gguf,
        publisher=resolve_publisher(snap, policy.publisher),
    )


def scan_snapshot(
    snap: Snapshot, policy: Policy, index: Index | None = None, behaviour: Sequence[BehaviourVerdict] = ()
) -> TargetReport:
    """`behaviour`: verdicts `originscan probe` gave on this model (scan --probe-results), lineage evidence."""
    ctx = build_context(snap, policy)
    ctx.behaviour_verdicts = list(behaviour)
    # reused while neither the weights nor the registered upstreams changed (scanner/provenance/verdicts.py)
    ctx.weight_matches, weight_problems = remembered(snap, index, weight_matches)
    if index is not None and snap.code:
        ctx.code_matches = code_matches(snap.code, CodeStore(index.db), exclude=(snap.name, snap.target))
    findings = run_checks(ctx) + weight_problems
    policy.apply(snap.target, findings)
    findings.sort(key=lambda f: (-f.severity, f.rule, f.path or ""))
    config = snap.jsons.get("config.json")
    facts = TargetFacts(
        snap.name,
        snap.kind,
        dict(ctx.card.metadata),
        ctx.lineage,
        snap.weight_files(),
        ctx.weight_matches,
        ctx.code_matches,
        config=config if isinstance(config, dict) else {},
        card_body=ctx.card.body,
        released=released_at(snap),
        datasets=ctx.datasets,
        files=list(snap.files.values()),
        publisher=ctx.publisher,
        behaviour_verdicts=ctx.behaviour_verdicts,
    )
    return TargetReport(snap.target, findings, revision=snap.revision, facts=facts)


def released_at(snap: Snapshot) -> str | None:
    """When the scanned content was published, for the AI-BOMs: the Hub's last commit time; for a local folder the
    newest modification time of its files (when this content last changed). None when the source does not say."""
    try:
        if snap.meta.get("last_modified"):
            when = dt.datetime.fromisoformat(str(snap.meta["last_modified"]).replace("Z", "+00:00"))
        elif snap.kind == "local" and snap.meta.get("newest_mtime") is not None:
            when = dt.datetime.fromtimestamp(float(snap.meta["newest_mtime"]), dt.UTC)
        else:
            return None
        return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (ValueError, OverflowError, OSError):  # a timestamp no calendar holds (hostile mtimes, odd metadata)
        return None


def scan_target(
    target: str,
    policy: Policy,
    index: Index | None = None,
    repo_id: str | None = None,
    behaviour: Sequence[BehaviourVerdict] = (),
) -> TargetReport:
    """Never raises for a bad repo: an unreadable target becomes a report with one source finding.
    `repo_id`: the Hub repo a local folder is the published content of (--repo-id); `behaviour`: probe verdicts."""
    try:
        snap = open_snapshot(target)
    except SourceError as exc:
        return TargetReport(target, [finding(exc.rule, str(exc))], error=str(exc))
    if repo_id:
        apply_repo_id(snap, repo_id)
    return scan_snapshot(snap, policy, index, behaviour)
