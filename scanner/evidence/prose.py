"""Parents named in a model card's prose: "fine-tuned from X", "built on X", a link to X's Hub page after such a
phrase, a model-index's own `base_model`. Weaker than metadata (a sentence can be loose, a link can be a comparison),
so lineage records it with low confidence and the sentence itself as evidence.

Only what follows a parent phrase in the same sentence is read, and only references that look like a model: a Hub
id or link, or a few words with a version or size in them ("Llama 3.1 8B Instruct"). Whether one names a known
upstream is for the knowledge base to say (scanner.evidence.lineage).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from scanner.evidence.card import CardFacts

MAX_BODY_CHARS = 200_000  # a card's prose worth reading; the rest is appendices, tables and licence texts
MAX_MENTIONS = 8
MAX_NAME_WORDS = 6

PARENT_PHRASE = re.compile(
    r"\b(?:fine[- ]?tuned(?: version)? (?:from|of|on(?: top of)?)|a fine[- ]?tune of|is a fine[- ]?tuned|based (?:up)?on|"
    r"built (?:on(?: top of)?|upon|from)|trained (?:from|on top of)|derived from|distilled from|"
    r"continued(?: the)? pre-?training (?:of|from|on)|initiali[sz]ed (?:from|with)|further trained from|"
    r"base model\s*(?:\*\*)?\s*[:：])",
    re.IGNORECASE,
)
HUB_LINK = re.compile(r"https?://(?:www\.)?(?:huggingface\.co|hf\.co)/([A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)")
HUB_ID = re.compile(r"(?<![\w./-])([A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*[A-Za-z0-9])(?![\w/-])")
NOT_MODELS = ("datasets", "spaces", "docs", "blog", "papers", "collections", "organizations", "settings")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])|\n\s*\n|\n(?=\s*[-*#|])")
WORD = re.compile(r"[A-Za-z0-9][\w.]*")
# A sentence that is part of a licence text quoted in the card, not a statement about this model's lineage.
LICENSE_WORDS = re.compile(r"\b(?:agreement|materials|licensee)\b", re.IGNORECASE)


@dataclass(frozen=True)
class ParentMention:
    references: tuple[str, ...]  # Hub ids and model names, most specific first
    quote: str  # the sentence that names them (shortened), for the finding's evidence


def _names_after(rest: str) -> list[str]:
    """Candidate model names at the start of `rest`: the longest first, each with a digit (a version or size)."""
    words = [w.rstrip(".") for w in WORD.findall(rest[:120])][:MAX_NAME_WORDS]
    names = []
    for n in range(len(words), 0, -1):
        name = "-".join(words[:n]).lower().replace("'s", "")
        if any(ch.isdigit() for ch in name):
            names.append(name)
    return names


def _references(rest: str) -> list[str]:
    refs = [m for m in HUB_LINK.findall(rest) if m.split("/", 1)[0].lower() not in NOT_MODELS]
    refs += [m for m in HUB_ID.findall(rest) if m not in refs and m.split("/", 1)[0].lower() not in NOT_MODELS]
    plain = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", rest)  # a link's text, not its address
    plain = re.sub(r"[`*_\"“”]", " ", plain)
    return refs + _names_after(plain.lstrip(" :：-–"))


def _quote(sentence: str) -> str:
    one = " ".join(sentence.split())
    return one if len(one) <= 200 else one[:197] + "…"


def parent_mentions(card: CardFacts) -> list[ParentMention]:
    """Parents the card names outside its base_model metadata, in the order it names them."""
    out: list[ParentMention] = []
    index = card.metadata.get("model-index")
    for entry in index if isinstance(index, list) else []:
        base = entry.get("base_model") if isinstance(entry, dict) else None
        if isinstance(base, str) and base.strip():
            out.append(ParentMention((base.strip(),), f"model-index base_model: {base.strip()}"))
    creator, original = card.metadata.get("model_creator"), card.metadata.get("model_name")
    if isinstance(creator, str) and isinstance(original, str) and original.strip():
        # re-uploaders' cards (TheBloke's convention) name the original model and who made it
        link = card.metadata.get("model_link")
        refs = (HUB_LINK.findall(link) if isinstance(link, str) else []) + _names_after(original)
        if refs:
            out.append(ParentMention(tuple(refs), f"model_creator: {creator.strip()}, model_name: {original.strip()}"))
    for sentence in SENTENCE_END.split(card.body[:MAX_BODY_CHARS]):
        if len(out) >= MAX_MENTIONS:
            break
        if LICENSE_WORDS.search(sentence):
            continue
        for m in PARENT_PHRASE.finditer(sentence):
            refs = _references(sentence[m.end() :])
            if refs:
                out.append(ParentMention(tuple(refs), _quote(sentence)))
                break
    return out
