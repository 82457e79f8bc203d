"""Licence texts found in the repo's files, recognised by their content (the knowledge base's markers), whatever
the file is called: LICENSE, GEMMA_TERMS.txt, LICENSES/…, legal/…, or the model card itself."""

from __future__ import annotations

from dataclasses import dataclass

from scanner.knowledge import KnowledgeBase, License, normalise
from scanner.sources.interface import Snapshot

ROOT_LICENSE_NAMES = ("LICENSE", "LICENSE.md", "LICENSE.txt", "LICENCE", "LICENCE.md", "LICENCE.txt", "COPYING")
CARD_NAMES = ("readme.md", "readme", "readme.txt")
USE_POLICY_TITLES = ("acceptable use policy", "prohibited use policy", "use policy")


@dataclass
class Detection:
    path: str
    license: License
    missing: tuple[str, ...] = ()  # phrases of the whole text this copy lacks: cut short or edited
    in_card: bool = False  # the text sits inside the model card (README.md)

    @property
    def complete(self) -> bool:
        return not self.missing


def _looks_like_license_file(path: str) -> bool:
    name = path.rsplit("/", 1)[-1].lower()
    return "licen" in name or name.startswith("copying") or path.lower().startswith(("licenses/", "licences/"))


def detect_licenses(snap: Snapshot, kb: KnowledgeBase) -> list[Detection]:
    """Every licence text the repo ships. A whole text counts wherever it is (a full licence inside README.md is
    a copy too); a partial one (the title and some of the text) is kept for files that are licence files by name
    or carry more than the title, so that it is reported as such and not taken for the licence."""
    found = []
    texts = {**snap.other_texts, **snap.texts}
    for path, text in sorted(texts.items()):
        match = kb.match_license_text(text)
        if match is None:
            continue
        in_card = path.lower() in CARD_NAMES
        wanted = len(match.license.markers) + (1 if match.license.ending else 0)
        if match.complete or (not in_card and (_looks_like_license_file(path) or wanted - len(match.missing) >= 2)):
            found.append(Detection(path, match.license, match.missing, in_card))
    return found


def shipped_copies(detections: list[Detection]) -> set[str]:
    """Licence ids of which the repo ships a whole text (a file or the card)."""
    return {d.license.id for d in detections if d.complete}


def license_files(detections: list[Detection]) -> list[Detection]:
    """Whole licence texts in files other than the card: what the repo says its licence is."""
    return [d for d in detections if d.complete and not d.in_card]


def is_use_policy(path: str, text: str) -> bool:
    """A use policy, by its name (USE_POLICY.md, LLAMA_USE_POLICY …) or by the title it opens with."""
    name = path.rsplit("/", 1)[-1].lower().replace("-", "_")
    if "use_policy" in name or name.split(".", 1)[0] in ("aup", "acceptable_use"):
        return True
    title = next((line for line in text[:2000].splitlines() if line.strip()), "")
    return any(t in normalise(title) for t in USE_POLICY_TITLES) and not path.lower().startswith("readme")


def root_license(snap: Snapshot, detections: list[Detection]) -> tuple[str, Detection | None] | None:
    """The main LICENSE file and what it was recognised as (None when unrecognised or only part of a text)."""
    present = snap.text(*ROOT_LICENSE_NAMES)
    if present is None:
        return None
    path = present[0]
    return path, next((d for d in detections if d.path == path and d.complete), None)


def all_text(snap: Snapshot) -> str:
    """Card, NOTICE, LICENSE … together, normalised, for phrase and notice searches."""
    return normalise("\n".join(snap.texts.values()))
