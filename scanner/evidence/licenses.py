"""Licence texts found in the repo's files, recognised by the knowledge base's markers."""

from __future__ import annotations

from dataclasses import dataclass

from scanner.knowledge import KnowledgeBase, License, normalise
from scanner.sources.interface import Snapshot

ROOT_LICENSE_NAMES = ("LICENSE", "LICENSE.md", "LICENSE.txt", "LICENCE", "LICENCE.md", "LICENCE.txt", "COPYING")


@dataclass
class Detection:
    path: str
    license: License


def detect_licenses(snap: Snapshot, kb: KnowledgeBase) -> list[Detection]:
    found = []
    for path, text in sorted(snap.texts.items()):
        if path.lower().startswith("readme"):
            continue
        lic = kb.detect_license_text(text)
        if lic:
            found.append(Detection(path, lic))
    return found


def root_license(snap: Snapshot, detections: list[Detection]) -> tuple[str, Detection | None] | None:
    """The main LICENSE file and what it was recognised as (None when unrecognised)."""
    present = snap.text(*ROOT_LICENSE_NAMES)
    if present is None:
        return None
    path = present[0]
    return path, next((d for d in detections if d.path == path), None)


def all_text(snap: Snapshot) -> str:
    """Card, NOTICE, LICENSE … together, normalised, for phrase and notice searches."""
    return normalise("\n".join(snap.texts.values()))
