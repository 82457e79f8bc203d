"""Where a local folder was published, as far as the folder itself says: a Hugging Face cache snapshot path
(…/models--OWNER--NAME/snapshots/REV) or the git remote of a repository whose work tree it is. What a source sees
about its target; who publishes it is decided in scanner/evidence/publisher.py."""

from __future__ import annotations

import re
from pathlib import Path

REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")  # OWNER/NAME as the Hub spells it
OWNER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

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
