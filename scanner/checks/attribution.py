"""Attribution family: phrases and names that base licences require of derivatives."""

from __future__ import annotations

import re
from collections.abc import Iterator

from scanner.checks.engine import Context, check
from scanner.evidence.licenses import all_text
from scanner.findings import Finding
from scanner.knowledge import normalise


def _squash(text: str) -> str:
    """'Llama-3 8B' and 'llama3_8b' compare equal: case, spaces, dashes and underscores are ignored."""
    return re.sub(r"[\s\-_.]+", "", text.lower())


def name_meets(name: str, naming: dict[str, object]) -> bool:
    """Whether a model name meets a licence's naming condition (`rule: prefix` = begins with, else includes)."""
    want = _squash(str(naming.get("text", "")))
    return _squash(name).startswith(want) if naming.get("rule") == "prefix" else want in _squash(name)


def model_name(ctx: Context) -> str:
    return ctx.card.model_name or ctx.snap.name.rsplit("/", 1)[-1]


@check("attribution.phrase_missing", "attribution.naming")
def attribution_required(ctx: Context) -> Iterator[Finding]:
    text = all_text(ctx.snap)
    for ob in ctx.lineage.obligations():
        lic = ob.license
        where = ob.evidence()
        because = ob.because() + ctx.unknown_publisher(lic)
        phrase = lic.conditions.get("attribution")
        if phrase and normalise(phrase) not in text:
            yield ctx.finding(
                "attribution.phrase_missing",
                f"{lic.name} requires \u201c{phrase}\u201d to be displayed; the card does not say it" + because,
                path=ctx.card.path,
                phrase=phrase,
                **where,
            )
        naming = lic.conditions.get("naming")
        if isinstance(naming, dict) and naming.get("text"):
            name, want = model_name(ctx), naming["text"]
            if not name_meets(name, naming):
                rule = "begin with" if naming.get("rule") == "prefix" else "include"
                yield ctx.finding(
                    "attribution.naming",
                    f"{lic.name} requires the model's name to {rule} "
                    f"\u201c{want}\u201d; it is \u201c{name}\u201d" + because,
                    path=ctx.card.path,
                    line=ctx.card.line_of("model_name"),
                    name=name,
                    required=want,
                    **where,
                )
