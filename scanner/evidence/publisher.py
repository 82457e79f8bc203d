"""Who publishes what is scanned, and where that was learned.

Licences bind their licensees, not their licensors: Meta does not owe Meta a copy of the Llama licence. Whether a
repo is the licensor's own release therefore depends on who publishes it, which the files alone do not say. It is
learned, in this order, from:

    the target           hf:OWNER/NAME or github:OWNER/REPO (or a repo id the scan was given: --repo-id)
    the policy           `publisher: OWNER` (or OWNER/NAME) in .originscan.yml
    the surroundings     what the source saw: in the GitHub Action the pull request's base repository or
                         GITHUB_REPOSITORY; for a local folder its git remote or a Hugging Face cache path
                         (…/models--OWNER--NAME/snapshots/REV)

`snap.meta["repo_id"]` / `["repo_id_from"]` carry what a source or the CI saw (an owner alone for a GitHub
repository, which need not be a Hub id); `snap.name` is the Hub id once one is known.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from scanner.errors import UsageError
from scanner.sources.interface import Snapshot

REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
OWNER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
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


# -- what a local folder says about where it was published -----------------------------------------------------------
_REMOTE = re.compile(
    r"(?:^|[/@])(?P<host>huggingface\.co|hf\.co|github\.com)[:/]+(?P<owner>[A-Za-z0-9][A-Za-z0-9._-]*)"
    r"/(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*?)(?:\.git)?/?$"
)
_CACHE_DIR = re.compile(r"^models--(?P<owner>[A-Za-z0-9][A-Za-z0-9._-]*?)--(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)$")


def repo_from_remote(url: str) -> tuple[str, str] | None:
    """(OWNER/NAME, host) of a Hugging Face or GitHub remote URL (https, ssh or scp-like); None for other hosts."""
    m = _REMOTE.search(url.strip())
    if m is None:
        return None
    host = "huggingface.co" if m["host"] in ("huggingface.co", "hf.co") else "github.com"
    return f"{m['owner']}/{m['name']}", host


def repo_from_cache_path(root: Path) -> str | None:
    """OWNER/NAME of a huggingface_hub cache snapshot: …/models--OWNER--NAME/snapshots/REVISION."""
    parts = root.parts
    if len(parts) >= 3 and parts[-2] == "snapshots" and (m := _CACHE_DIR.match(parts[-3])):
        return f"{m['owner']}/{m['name']}"
    return None


def local_origin(root: Path) -> tuple[str, str] | None:
    """(repo id or owner, where it was learned) for a folder on disk: a cache snapshot path, else the git remote of
    a repository whose work tree is this very folder (a model folder inside a larger repository is not that
    repository's published content)."""
    cached = repo_from_cache_path(root)
    if cached is not None:
        return cached, "the Hugging Face cache path"
    try:
        if not (root / ".git").exists():
            return None
    except OSError:  # a folder that cannot be searched (mode 0644): no publisher known, the walk says why
        return None
    try:
        import git

        repo = git.Repo(root)
        try:
            remotes = sorted(repo.remotes, key=lambda r: r.name != "origin")  # origin first
            urls = [(r.name, url) for r in remotes for url in r.urls]
        finally:
            repo.close()
    except Exception:  # not a repository after all, a broken config: no publisher, never a failed scan
        return None
    for name, url in urls:
        hit = repo_from_remote(url)
        if hit is not None:
            repo_id, host = hit
            if host == "github.com":  # a GitHub repository's owner publishes it; its name is no Hub id
                return repo_id.split("/", 1)[0], f"git remote {name} (github.com/{repo_id})"
            return repo_id, f"git remote {name} (huggingface.co/{repo_id})"
    return None
