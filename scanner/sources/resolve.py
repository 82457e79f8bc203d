"""Target strings → sources.

./path/to/model             a local folder
hf:OWNER/NAME[@REV]         a Hugging Face model repo, optionally pinned
github:OWNER/REPO[@REF]     a GitHub repo, optionally at a branch, tag or commit
hf:ORG  /  github:ORG       an organisation (or user): every repo of it, for `sweep`
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from scanner.errors import UsageError

if TYPE_CHECKING:
    from scanner.sources.interface import Source

SCHEMES = ("hf", "github")
_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_REPO_RE = re.compile(rf"^(?P<owner>{_NAME})/(?P<name>{_NAME})(?:@(?P<rev>[^\s@]+))?$")
_ORG_RE = re.compile(rf"^(?P<owner>{_NAME})$")


def parse_target(text: str) -> tuple[str, str | None, str | None, str | None]:
    """(kind, owner, name, rev): kind is "local", "hf", "github", "hf-org" or "github-org".

    For "local", owner is the path and name/rev are None; for an org, name and rev are None.
    Raises UsageError with one clear line for an unknown scheme or a malformed target.
    """
    if not isinstance(text, str) or not text.strip():
        raise UsageError("empty target: expected a folder, hf:OWNER/NAME[@REV] or github:OWNER/REPO[@REF]")
    text = text.strip()
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*):(.*)$", text)
    # A Windows drive letter (C:\…) is a path, not a scheme.
    if m is None or (len(m.group(1)) == 1 and m.group(2).startswith(("\\", "/"))):
        return "local", text, None, None
    scheme, rest = m.group(1).lower(), m.group(2)
    if scheme in ("http", "https"):
        hint = _hint_for_url(text)
        raise UsageError(f"{text}: URLs are not targets; {hint}")
    if scheme not in SCHEMES:
        raise UsageError(f"{text}: unknown scheme {scheme!r} (expected hf: or github:, or a local folder)")
    rest = rest.strip().strip("/")
    if (o := _ORG_RE.match(rest)) is not None:
        return f"{scheme}-org", o.group("owner"), None, None
    r = _REPO_RE.match(rest)
    if r is None or r.group("name").endswith(".git") and scheme == "hf":
        form = "hf:OWNER/NAME[@REV]" if scheme == "hf" else "github:OWNER/REPO[@REF]"
        raise UsageError(f"{text}: malformed target (expected {form}, or {scheme}:ORG for an organisation)")
    name = r.group("name")
    if scheme == "github" and name.endswith(".git"):
        name = name[:-4]
    return scheme, r.group("owner"), name, r.group("rev")


def _hint_for_url(url: str) -> str:
    m = re.match(r"^https?://(?:www\.)?huggingface\.co/([^/]+)/([^/?#]+)", url)
    if m:
        return f"write hf:{m.group(1)}/{m.group(2)}"
    m = re.match(r"^https?://(?:www\.)?github\.com/([^/]+)/([^/?#]+)", url)
    if m:
        return f"write github:{m.group(1)}/{m.group(2).removesuffix('.git')}"
    return "write hf:OWNER/NAME or github:OWNER/REPO"


def open_source(target: str, *, token: str | None = None, cache: Any = None, hash_weights: bool = True) -> Source:
    """A source object with `.snapshot()` for one repo target (not an org)."""
    kind, owner, name, rev = parse_target(target)
    if kind == "local":
        from scanner.sources.local import LocalSource

        return LocalSource(owner, target=target, hash_weights=hash_weights, cache=cache)  # type: ignore[arg-type]
    if kind.endswith("-org"):
        raise UsageError(
            f"{target}: names an organisation; use `originscan sweep {target}` or name one repo "
            f"({kind[:-4]}:{owner}/NAME)"
        )
    if kind == "hf":
        from scanner.sources.hf import HFSource

        return HFSource(f"{owner}/{name}", revision=rev, token=token, target=target, cache=cache)
    from scanner.sources.github import GitHubSource

    return GitHubSource(owner, name, ref=rev, token=token, target=target, cache=cache)  # type: ignore[arg-type]


def is_org(target: str) -> bool:
    return parse_target(target)[0].endswith("-org")


def list_org(
    target: str, *, token: str | None = None, include_forks: bool = False, include_archived: bool = False
) -> list[str]:
    """Repo targets (`hf:ORG/NAME`, `github:ORG/REPO`) of an org target; a repo target lists itself."""
    kind, owner, name, _ = parse_target(target)
    if kind == "hf-org":
        from scanner.sources.hf import list_org_models

        return [f"hf:{rid}" for rid in list_org_models(owner, token=token)]  # type: ignore[arg-type]
    if kind == "github-org":
        from scanner.sources.github import list_org_repos

        return [
            f"github:{full}"
            for full in list_org_repos(
                owner,  # type: ignore[arg-type]  # an org target always has an owner
                include_forks=include_forks,
                include_archived=include_archived,
                token=token,
            )
        ]
    if kind == "local":
        raise UsageError(f"{target}: a local folder is not an organisation (expected hf:ORG or github:ORG)")
    return [target]
