"""License family: is a licence declared, recognised, consistent, allowed, and compatible with the base's?"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from scanner.checks.engine import Context, check
from scanner.evidence.licenses import (
    ROOT_LICENSE_NAMES,
    all_text,
    is_use_policy,
    license_files,
    root_license,
    shipped_copies,
)
from scanner.findings import Finding
from scanner.knowledge import normalise


@check("license.missing", "license.other_unnamed", "license.unknown")
def license_declared(ctx: Context) -> Iterator[Finding]:
    card_id = ctx.card.license
    if not card_id and not license_files(ctx.detections):
        yield ctx.finding(
            "license.missing", "no licence in the card metadata and no recognisable LICENSE file", path=ctx.card.path
        )
        return
    if card_id and card_id.lower() == "other":
        if not ctx.card.license_name or not ctx.card.license_link:
            missing = [k for k in ("license_name", "license_link") if not ctx.card.metadata.get(k)]
            yield ctx.finding(
                "license.other_unnamed",
                f"`license: other` without {' and '.join(missing)}",
                path=ctx.card.path,
                line=ctx.card.line_of("license"),
                missing=missing,
            )
        elif ctx.kb.license(ctx.card.license_name) is None:
            yield ctx.finding(
                "license.unknown",
                f"license_name {ctx.card.license_name!r} is not a licence "
                "originscan knows; its obligations were not checked",
                path=ctx.card.path,
                line=ctx.card.line_of("license_name"),
                license_name=ctx.card.license_name,
            )
    elif card_id and (card_id.lower() == "unknown" or not ctx.lineage.own_licenses):
        yield ctx.finding(
            "license.unknown",
            f"licence {card_id!r} is not recognised",
            path=ctx.card.path,
            line=ctx.card.line_of("license"),
            license=card_id,
        )


@check("license.card_file_mismatch")
def license_matches_file(ctx: Context) -> Iterator[Finding]:
    own = ctx.own_license()
    root = root_license(ctx.snap, ctx.detections)
    if own is None or root is None:
        return
    path, det = root
    if det is None:
        return
    if det.license.id not in {lic.id for lic in ctx.lineage.own_licenses}:
        yield ctx.finding(
            "license.card_file_mismatch",
            f"card says {own.id} but {path} is the {det.license.name}",
            path=ctx.card.path,
            line=ctx.card.line_of("license"),
            card_license=own.id,
            file=path,
            file_license=det.license.id,
        )


@check("license.denied", "license.not_allowed")
def license_policy(ctx: Context) -> Iterator[Finding]:
    own = ctx.own_license()
    ids = {x for x in (ctx.card.license, own.id if own else None, own.spdx if own else None) if x}
    ids |= {d.license.id for d in license_files(ctx.detections) if not ctx.card.license}
    ids_lower = {i.lower() for i in ids}
    denied = ids_lower & set(ctx.policy.deny)
    if denied:
        yield ctx.finding(
            "license.denied",
            f"licence {', '.join(sorted(denied))} is denied by the policy",
            path=ctx.card.path,
            line=ctx.card.line_of("license"),
            license=sorted(denied),
        )
    elif ctx.policy.allow and ids_lower and not ids_lower & set(ctx.policy.allow):
        yield ctx.finding(
            "license.not_allowed",
            f"licence {', '.join(sorted(ids))} is not on the policy's allow list",
            path=ctx.card.path,
            line=ctx.card.line_of("license"),
            license=sorted(ids),
        )


@check("license.incompatible")
def license_compatible(ctx: Context) -> Iterator[Finding]:
    own = ctx.own_license()
    if own is None:
        return
    for ob in ctx.lineage.obligations():
        base = ob.license
        if ob.upstream is None or any(base.id == o.id or base.allows_outbound(o.id) for o in ctx.lineage.own_licenses):
            continue
        why = []
        if base.derivatives is False:
            why.append("the base licence allows no derivatives")
        if base.commercial is False and own.commercial is not False:
            why.append("the base is non-commercial")
        if base.conditions.get("share_alike"):
            why.append("the base licence is share-alike")
        if base.conditions.get("use_restrictions"):
            why.append("the base's use restrictions must bind every downstream user")
        allowed = base.outbound if isinstance(base.outbound, list) else []
        yield ctx.finding(
            "license.incompatible",
            f"{own.id} is not a licence a derivative of {ob.upstream.id} ({base.id}) may use"
            + (f": {'; '.join(why)}" if why else "")
            + (f" (allowed: {', '.join(allowed)})" if allowed else "")
            + ob.because(),
            path=ctx.card.path,
            line=ctx.card.line_of("license"),
            license=own.id,
            **ob.evidence(),
        )


@check("license.copy_missing", "license.notice_missing", "license.use_restrictions_missing")
def license_obligations(ctx: Context) -> Iterator[Finding]:
    text = all_text(ctx.snap)
    shipped = shipped_copies(ctx.detections)
    policies = [p for p, t in {**ctx.snap.other_texts, **ctx.snap.texts}.items() if is_use_policy(p, t)]
    for ob in ctx.lineage.obligations():
        lic, cond, where = ob.license, ob.license.conditions, ob.evidence()
        because = ob.because() + ctx.unknown_publisher(lic)
        if cond.get("license_copy") and lic.markers and lic.id not in shipped:
            partial = next((d for d in ctx.detections if d.license.id == lic.id and not d.complete), None)
            extra: dict[str, Any] = {}  # evidence fields, as ob.evidence()'s
            if partial is None:
                said = "no file here carries its text"
                path = next((p for p in ROOT_LICENSE_NAMES if p in ctx.snap.texts), None)
            else:  # a text cut short or edited is reported as such, not taken for the licence
                lacks = ", ".join(f"\u201c{m}\u201d" for m in partial.missing[:2])
                said = f"{partial.path} holds only part of its text (cut short or edited: no {lacks})"
                extra["partial_copy"] = partial.path
                path = partial.path
            yield ctx.finding(
                "license.copy_missing",
                f"{lic.name} requires recipients to get a copy of it; {said}" + because,
                path=path,
                **extra,
                **where,
            )
        notice = cond.get("notice")
        if notice and normalise(notice) not in text:
            yield ctx.finding(
                "license.notice_missing",
                f"the notice required by {lic.name} is missing: \u201c{notice}\u201d" + because,
                path="NOTICE",
                notice=notice,
                **where,
            )
        if cond.get("use_restrictions") and lic.id not in shipped and not policies:
            yield ctx.finding(
                "license.use_restrictions_missing",
                f"{lic.name} requires its use restrictions to be passed on; the repo ships neither "
                "that licence nor a use policy" + because,
                path=ctx.card.path,
                **where,
            )


@check("license.gguf_mismatch")
def license_matches_gguf(ctx: Context) -> Iterator[Finding]:
    """The licence a GGUF carries inside (general.license) is the model's; the card must not say otherwise."""
    facts = ctx.gguf
    if facts is None or not facts.license:
        return
    inside = ctx.kb.license(facts.license)
    own = ctx.lineage.own_licenses
    if inside is None or inside.is_placeholder or not own or inside.id in {lic.id for lic in own}:
        return  # "other" / "unknown" inside says nothing to contradict
    yield ctx.finding(
        "license.gguf_mismatch",
        f"card says {own[0].id} but {facts.path} carries general.license = {facts.license} ({inside.name})",
        path=ctx.card.path,
        line=ctx.card.line_of("license"),
        card_license=own[0].id,
        gguf_license=inside.id,
        file=facts.path,
    )
