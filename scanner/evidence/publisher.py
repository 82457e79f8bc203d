"""Who publishes what is scanned, and where that was learned.

Licences bind their licensees, not their licensors: Meta does not owe Meta a copy of the Llama licence. Whether a
repo is the licensor's own release therefore depends on who publishes it, which the files alone do not say. It is
learned, in this order, from:

    the target           hf:OWNER/NAME or github:OWNER/REPO (or a repo id the scan was given: --repo-id)
    the policy           `publisher: OWNER` (or OWNER/NAME) in .originscan.yml
    the surroundings     what the source saw: in the GitHub Action the pull request's base repository or
                         GITHUB_REPOSITORY; for a local folder its git remote or a Hugging Face cache path
                         (…/models--OWNER--NAME/snapshots/REV): scanner/sources/origin.py

`snap.meta["repo_id"]` / `["repo_id_from"]` carry what a source or the CI saw (an owner alone for a GitHub
repository, which need not be a Hub id); `snap.name` is the Hub id once one is known.
"""

from __future__ import annotations

from dataclasses import dataclass

from scanner.errors import UsageError
from scanner.sources.interface import Snapshot
from scanner.sources.origin import REPO_ID

HOW_TO_STATE = "state it: --repo-id OWNER/NAME or `publisher:` in .originscan.yml"


@dataclass(frozen=True)
class Publisher:
    owner: str | None = None  # the organisation or user that publishes the scanned content
    learned_from: str = ""  # where that was learned, for messages ("the hf: target", "git remote origin" …)

    @property
    def known(self) -> bool:
        return self.owner is not None

    def describe(self) -> str:
        return f"{self.owner} (from {self.learned_from})" if self.owner else "unknown"


def repo_id_option(value: str) -> str:
    """A `--repo-id` value: OWNER/NAME as the Hub spells it; anything else is one clear usage error."""
    value = value.strip()
    if not REPO_ID.match(value):
        raise UsageError(f"--repo-id {value!r}: expected OWNER/NAME (a Hub repo id)")
    return value


def apply_repo_id(snap: Snapshot, repo_id: str, learned_from: str = "--repo-id") -> None:
    """This folder is the published content of that Hub repo: the scan names it so (lineage, links, publisher)."""
    snap.name = repo_id_option(repo_id)
    snap.meta["repo_id_from"] = learned_from


def resolve_publisher(snap: Snapshot, policy_publisher: str | None = None) -> Publisher:
    if snap.kind in ("hf", "github") and "/" in snap.name:
        return Publisher(snap.name.split("/", 1)[0], f"the {snap.kind}: target")
    if "/" in snap.name:  # a local folder the scan was told the Hub id of
        return Publisher(snap.name.split("/", 1)[0], str(snap.meta.get("repo_id_from") or "the repo id given"))
    if policy_publisher:
        return Publisher(policy_publisher.split("/", 1)[0], "`publisher:` in the policy")
    seen = snap.meta.get("repo_id")
    if isinstance(seen, str) and seen:
        return Publisher(seen.split("/", 1)[0], str(snap.meta.get("repo_id_from") or "the source"))
    return Publisher()
