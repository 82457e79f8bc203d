"""Model signatures (scanner.evidence.signatures): a release changed after signing, a signer the policy does not
trust, a signature nobody could verify, and — when the policy asks for one — a release without a signature."""

from __future__ import annotations

from collections.abc import Iterator

from scanner.checks.engine import Context, check
from scanner.evidence.signatures import verify_repo
from scanner.findings import Finding


def _some(paths: list[str], limit: int = 5) -> str:
    more = f" and {len(paths) - limit} more" if len(paths) > limit else ""
    return ", ".join(paths[:limit]) + more


@check(
    "security.signature_mismatch",
    "security.signature_untrusted",
    "security.signature_unverified",
    "security.signature_verified",
    "security.unsigned",
)
def model_signatures(ctx: Context) -> Iterator[Finding]:
    policy = ctx.policy.signatures
    found = verify_repo(ctx.snap, policy)
    if not found and policy.require:
        yield ctx.finding(
            "security.unsigned",
            "no model signature (a model-signing bundle such as model.sig) in this release; the policy requires one",
        )
    for s in found:
        evidence = s.to_json()
        if s.trusted_by is None:
            rule = "security.signature_untrusted" if policy.anchors else "security.signature_unverified"
            yield ctx.finding(rule, f"{s.path}: signed by {s.claimed}; {s.problem}", path=s.path, **evidence)
        elif s.mismatched or s.missing:
            changed = [f"{p} (changed)" for p in s.mismatched] + [f"{p} (gone)" for p in s.missing]
            yield ctx.finding(
                "security.signature_mismatch",
                f"{s.path}: {len(changed)} of {s.signed} signed files no longer match the signature by "
                f"{s.claimed}: {_some(changed)}",
                path=s.path,
                **evidence,
            )
        else:
            extra = f"; {len(s.unsigned)} files here are not covered by it: {_some(s.unsigned)}" if s.unsigned else ""
            unchecked = f"; {len(s.unchecked)} not checked ({s.problem or 'hash unknown'})" if s.unchecked else ""
            yield ctx.finding(
                "security.signature_verified",
                f"{s.path}: verified with {s.trusted_by}; {s.matched} of {s.signed} signed files match{unchecked}{extra}",
                path=s.path,
                **evidence,
            )
