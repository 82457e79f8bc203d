"""A repo on GitHub or GitHub Enterprise Server (GITHUB_API_URL), read through the REST API and a shallow,
blob-filtered git fetch.

A snapshot fetches one commit at depth 1 with `--filter=blob:limit=1m` into a temporary folder that is always
removed: trees and small blobs come down (cards, configs, Git LFS pointers), large blobs do not. Lazy fetching is
switched off afterwards, so nothing reads a large blob by accident; LFS pointers give sha256 + size for free, and
weights are read later by HTTP Range on the contents API's `download_url`. With a cache, a rescan of an unchanged
repo is one `GET /repos/{o}/{r}/commits/{ref}` with `If-None-Match` (a 304, free of rate limit).
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from scanner.errors import SourceError
from scanner.file_formats import is_weight_file
from scanner.sources import http
from scanner.sources.cache import Cache, record_is_current, resolve_cache, snapshot_from_record, snapshot_to_record
from scanner.sources.interface import (
    MAX_TEXT_BYTES,
    SMALL_JSON_FILES,
    RepoFile,
    Snapshot,
    decode_text,
    is_text_file,
    json_limit,
    parse_json,
)
from scanner.sources.local import parse_lfs_pointer

DEFAULT_API = "https://api.github.com"
BLOB_LIMIT = "1m"
RATE_LIMIT_MAX_WAIT = 60.0  # wait for a rate-limit reset only when it is this close
GIT_TIMEOUT = 300
_SHA = re.compile(r"^[0-9a-f]{40}$")
RAW_HOSTS = ("raw.githubusercontent.com",)  # where github.com's contents API points download_url


def api_base(api_url: str | None = None) -> str:
    return (api_url or os.environ.get("GITHUB_API_URL") or DEFAULT_API).rstrip("/")


def _token(token: str | None) -> str | None:
    return token or os.environ.get("GITHUB_TOKEN") or None


class APIError(SourceError):
    """A GitHub REST call answered with an error status (`status`; None when no answer came)."""

    def __init__(self, message: str, status: int | None = None, rule: str = "source.unreachable"):
        super().__init__(message, rule)
        self.status = status


class GitHubAPI:
    """The one GitHub REST client (sources, CI comments, tracking issues): timeouts, retries through
    `http.request`, pagination that never follows a `Link: next` to another host, rate-limit handling."""

    def __init__(
        self,
        token: str | None = None,
        api_url: str | None = None,
        retry: http.RetryPolicy = http.DEFAULT_RETRY,
        rate_limit_max_wait: float = RATE_LIMIT_MAX_WAIT,
    ):
        self.base = api_base(api_url)
        self._token = _token(token)
        self.retry = retry
        self.rate_limit_max_wait = rate_limit_max_wait
        self.calls = 0

    def __repr__(self) -> str:  # never shows the token
        return f"GitHubAPI({self.base!r})"

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        h = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
        if self._token:
            h["Authorization"] = f"Bearer {self._token}"
        h.update(extra or {})
        return h

    def get(
        self,
        path_or_url: str,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        what: str | None = None,
    ) -> requests.Response:
        url = path_or_url if path_or_url.startswith(("http://", "https://")) else self.base + path_or_url
        label = what or f"GitHub API {http.redact(url)}"
        waited = False
        while True:
            self.calls += 1
            resp = http.request("GET", url, params=params, headers=self.headers(headers), retry=self.retry, what=label)
            if resp.status_code in (403, 429) and resp.headers.get("X-RateLimit-Remaining") == "0":
                reset = resp.headers.get("X-RateLimit-Reset", "")
                wait = max(0.0, int(reset) - time.time()) + 1 if reset.isdigit() else None
                if wait is not None and wait <= self.rate_limit_max_wait and not waited:
                    waited = True
                    http._sleep(wait)
                    continue
                when = time.strftime("%H:%M:%S", time.localtime(int(reset))) if reset.isdigit() else "unknown"
                hint = "" if self._token else "; set GITHUB_TOKEN for a higher limit"
                raise SourceError(
                    f"{label}: GitHub API rate limit exhausted (resets at {when}){hint}", rule="source.unreachable"
                )
            return resp

    @staticmethod
    def _refuse(resp: requests.Response, label: str) -> APIError:
        err = http.status_error(resp, label)
        return APIError(str(err), resp.status_code, err.rule)

    def send(self, method: str, path: str, body: Any = None, what: str | None = None) -> Any:
        """A write (POST, PATCH …) with a JSON body; the answer's JSON (None when empty). Never follows a
        redirect (it would carry the token); a status of 300 or more raises APIError."""
        label = what or f"GitHub API {method} {path.split('?')[0]}"
        self.calls += 1
        resp = http.request(
            method,
            self.base + path,
            json=body,
            headers=self.headers(),
            retry=self.retry,
            what=label,
            allow_redirects=False,
        )
        if resp.status_code >= 300:
            raise self._refuse(resp, label)
        try:
            return resp.json() if resp.content else None
        except ValueError:
            raise APIError(
                f"{label}: GitHub API answered something that is not JSON", resp.status_code, "source.malformed"
            ) from None

    def get_json(self, path: str, params: dict[str, Any] | None = None, what: str | None = None) -> Any:
        resp = self.get(path, params=params, what=what)
        if resp.status_code != 200:
            raise self._refuse(resp, what or f"GitHub API {path}")
        try:
            return resp.json()
        except ValueError:
            raise SourceError(
                f"{what or path}: GitHub API answered something that is not JSON", rule="source.malformed"
            ) from None

    def paginate(
        self, path: str, params: dict[str, Any] | None = None, what: str | None = None, max_pages: int = 1000
    ) -> list[Any]:
        return list(self.iterate(path, params, what, max_pages))

    def iterate(
        self, path: str, params: dict[str, Any] | None = None, what: str | None = None, max_pages: int = 1000
    ) -> Iterator[Any]:
        """The items of a listing, page by page (a caller that finds what it wants stops reading)."""
        url: str | None = path
        query: dict[str, Any] | None = {"per_page": 100, **(params or {})}
        origin = re.match(r"^https?://[^/]+", self.base)
        for _ in range(max_pages):
            if url is None:
                break
            resp = self.get(url, params=query, what=what)
            if resp.status_code != 200:
                raise self._refuse(resp, what or f"GitHub API {path}")
            try:
                page = resp.json()
            except ValueError:
                page = None
            if not isinstance(page, list):
                raise APIError(f"{what or path}: expected a list", resp.status_code, "source.malformed")
            yield from page
            nxt = resp.links.get("next", {}).get("url")
            # Never send the token to another host because a Link header said so.
            url = nxt if nxt and origin and nxt.startswith(origin.group(0) + "/") else None
            query = None  # the next link carries its own query


def _git_env(token: str | None) -> dict[str, str]:
    """Credentials go through GIT_CONFIG_* variables, never argv (visible in `ps`) nor output."""
    env = {"GIT_TERMINAL_PROMPT": "0", "GIT_LFS_SKIP_SMUDGE": "1", "GIT_CONFIG_NOSYSTEM": "1", "GIT_NO_LAZY_FETCH": "1"}
    if token:
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        env.update(
            {
                "GIT_CONFIG_COUNT": "1",
                "GIT_CONFIG_KEY_0": "http.extraHeader",
                "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
            }
        )
    return env


def _scrub(text: str, token: str | None) -> str:
    if token:
        text = text.replace(token, "***")
        text = text.replace(base64.b64encode(f"x-access-token:{token}".encode()).decode(), "***")
    return text


class GitHubSource:
    kind = "github"

    def __init__(
        self,
        owner: str,
        repo: str,
        ref: str | None = None,
        token: str | None = None,
        *,
        api_url: str | None = None,
        target: str | None = None,
        cache: Cache | None | bool = None,
        retry: http.RetryPolicy = http.DEFAULT_RETRY,
    ):
        self.owner = owner
        self.repo = repo
        self.ref = ref
        self.token = _token(token)
        self.api = GitHubAPI(self.token, api_url, retry=retry)
        self.target = target or f"github:{owner}/{repo}" + (f"@{ref}" if ref else "")
        self.cache = resolve_cache(cache)
        self.retry = retry

    def __repr__(self) -> str:
        return f"GitHubSource({self.owner!r}, {self.repo!r}, ref={self.ref!r})"

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.repo}"

    def snapshot(self) -> Snapshot:
        label = self.target
        record = self.cache.get_record("github", self.full_name, self.ref) if self.cache else None
        if record is not None:
            ref = self.ref or record.get("default_branch") or "HEAD"
            resp = self.api.get(
                f"/repos/{self.full_name}/commits/{quote(ref, safe='')}",
                headers={"If-None-Match": record.get("etag") or ""},
                what=label,
            )
            same = resp.status_code == 304
            if resp.status_code == 200:
                try:
                    same = resp.json().get("sha") == record.get("revision")
                except ValueError:
                    same = False
            if same and record_is_current(record.get("snapshot")):
                snap = snapshot_from_record(self.target, "github", record["snapshot"])
                snap.meta["cache"] = "hit"
                self._set_opener(snap)
                return snap

        try:
            meta = self.api.get_json(f"/repos/{self.full_name}", what=label)
        except SourceError as exc:
            if exc.rule == "source.not_found":
                raise SourceError(
                    f"{label}: repository not found (or private: set GITHUB_TOKEN)", rule="source.not_found"
                ) from None
            if exc.rule == "source.unverifiable":
                snap = Snapshot(target=self.target, kind="github", name=self.full_name)
                snap.problem("source.unverifiable", str(exc))
                return snap
            raise
        ref = self.ref or meta.get("default_branch") or "main"
        resp = self.api.get(f"/repos/{self.full_name}/commits/{quote(ref, safe='')}", what=label)
        if resp.status_code in (404, 422):
            raise SourceError(f"{label}: ref {ref!r} not found", rule="source.not_found")
        if resp.status_code != 200:
            raise http.status_error(resp, label)
        sha = resp.json().get("sha")
        etag = resp.headers.get("ETag")
        clone_url = meta.get("clone_url")
        if not clone_url:
            raise SourceError(f"{label}: the API gave no clone_url", rule="source.malformed")

        snap = Snapshot(target=self.target, kind="github", name=meta.get("full_name") or self.full_name, revision=sha)
        snap.meta.update(
            {
                "default_branch": meta.get("default_branch"),
                "archived": bool(meta.get("archived")),
                "fork": bool(meta.get("fork")),
                "private": bool(meta.get("private")),
                "license": (meta.get("license") or {}).get("spdx_id"),
                "html_url": meta.get("html_url"),
                "etag": etag,
            }
        )
        self._read_tree(snap, clone_url, ref, sha)
        self._set_opener(snap)
        if self.cache is not None and sha:
            self.cache.put_record(
                "github",
                self.full_name,
                self.ref,
                {
                    "revision": snap.revision,
                    "etag": etag,
                    "default_branch": meta.get("default_branch"),
                    "snapshot": snapshot_to_record(snap),
                },
            )
        snap.meta["cache"] = "miss" if self.cache is not None else "off"
        return snap

    # -- git --------------------------------------------------------------------------------------------------------
    def _read_tree(self, snap: Snapshot, clone_url: str, ref: str, sha: str | None) -> None:
        import git

        tmp = tempfile.mkdtemp(prefix="originscan-gh-")
        repo = None
        try:
            repo = git.Repo.init(tmp, bare=True)
            env = _git_env(self.token)
            g = repo.git
            g.update_environment(**env)
            g.remote("add", "origin", clone_url)
            g.config("remote.origin.promisor", "true")
            g.config("remote.origin.partialclonefilter", f"blob:limit={BLOB_LIMIT}")
            want = ref  # a branch or tag name; a commit sha works where the server allows fetching by sha
            try:
                g.fetch(
                    "--depth",
                    "1",
                    f"--filter=blob:limit={BLOB_LIMIT}",
                    "--no-tags",
                    "origin",
                    want,
                    kill_after_timeout=GIT_TIMEOUT,
                )
            except git.GitCommandError as exc:
                if sha and want != sha:
                    try:
                        g.fetch(
                            "--depth",
                            "1",
                            f"--filter=blob:limit={BLOB_LIMIT}",
                            "--no-tags",
                            "origin",
                            sha,
                            kill_after_timeout=GIT_TIMEOUT,
                        )
                    except git.GitCommandError:
                        raise exc from None
                else:
                    raise
            head = g.rev_parse("FETCH_HEAD").strip()
            snap.revision = head
            # No lazy fetching from here on: a missing (large) blob must stay missing.
            # (Unsetting remote.origin.promisor is not enough: the promisor pack still triggers fetches.)
            g.remote("remove", "origin")
            listing = g.ls_tree("-r", "-z", "--full-tree", head)
            missing: list[str] = []
            for item in filter(None, listing.split("\0")):
                info, _, path = item.partition("\t")
                mode, otype, oid = info.split()
                if otype != "blob" or mode == "120000":  # skip submodules and symlinks
                    continue
                try:
                    _, _, size = repo.odb.info(bytes.fromhex(oid))
                except Exception:
                    missing.append(path)
                    snap.files[path] = RepoFile(path, 0)
                    continue
                self._add_blob(snap, repo, path, oid, int(size))
            if missing:
                self._sizes_from_api(snap, head, missing)
        except git.GitCommandError as exc:
            stderr = _scrub((exc.stderr or "").strip().splitlines()[-1] if exc.stderr else "", self.token)
            raise SourceError(f"{self.target}: git fetch failed: {stderr[:200]}", rule="source.unreachable") from None
        finally:
            if repo is not None:
                repo.close()
            shutil.rmtree(tmp, ignore_errors=True)

    def _add_blob(self, snap: Snapshot, repo: Any, path: str, oid: str, size: int) -> None:
        entry = RepoFile(path, size)
        snap.files[path] = entry
        wants_text = snap.wants_text(path)
        if size <= 1024 and (is_weight_file(path) or path in SMALL_JSON_FILES or wants_text):
            data = repo.odb.stream(bytes.fromhex(oid)).read()
            pointer = parse_lfs_pointer(data)
            if pointer:
                entry.sha256, entry.size = pointer
                entry.lfs_pointer = True
                return
        else:
            data = None
        if path in SMALL_JSON_FILES:
            if size > json_limit(path):
                snap.problem(
                    "source.too_large",
                    f"{path} is {size} bytes, over the {json_limit(path)}-byte limit; not parsed",
                    path=path,
                )
                return
            data = data if data is not None else repo.odb.stream(bytes.fromhex(oid)).read()
            value = parse_json(data, path, snap)
            if value is not None:
                snap.jsons[path] = value
        elif wants_text:
            data = data if data is not None else repo.odb.stream(bytes.fromhex(oid)).read()
            if len(data) > MAX_TEXT_BYTES:
                snap.problem(
                    "source.too_large", f"{path} is {size} bytes; only the first {MAX_TEXT_BYTES} were read", path=path
                )
                data = data[:MAX_TEXT_BYTES]
            snap.keep_text(path, decode_text(data, path, snap))

    def _sizes_from_api(self, snap: Snapshot, sha: str, missing: list[str]) -> None:
        """Blobs over the filter limit were not fetched; the trees API knows their sizes."""
        try:
            tree = self.api.get_json(
                f"/repos/{self.full_name}/git/trees/{sha}", params={"recursive": "1"}, what=self.target
            )
        except SourceError as exc:
            snap.problem("source.unverifiable", f"sizes of {len(missing)} large files unknown: {exc}")
            return
        sizes = {t.get("path"): t.get("size") for t in tree.get("tree", []) if t.get("type") == "blob"}
        for path in missing:
            if isinstance(sizes.get(path), int):
                snap.files[path].size = sizes[path]
            elif path in SMALL_JSON_FILES or is_text_file(path):
                snap.problem("source.too_large", f"{path} is over {BLOB_LIMIT}B; not read", path=path)

    # -- weights ----------------------------------------------------------------------------------------------------
    def _set_opener(self, snap: Snapshot) -> None:
        rev = snap.revision or self.ref

        def opener(path: str) -> http.HTTPRangeByteSource:
            entry = snap.files.get(path)
            if entry is None:
                raise OSError(f"{self.target}: no file {path}")
            info = self.api.get_json(
                f"/repos/{self.full_name}/contents/{quote(path)}",
                params={"ref": rev} if rev else None,
                what=f"{self.target}: {path}",
            )
            url = info.get("download_url") if isinstance(info, dict) else None
            if not url:
                raise SourceError(f"{self.target}: {path} has no download URL", rule="source.unverifiable")
            # The token goes only where GitHub serves file content (the API's own host, raw.githubusercontent.com):
            # a download_url naming any other host gets no credentials.
            trusted = urlsplit(url).hostname in (urlsplit(self.api.base).hostname, *RAW_HOSTS)
            headers = {"Authorization": f"Bearer {self.token}"} if self.token and trusted else {}
            return http.HTTPRangeByteSource(url, entry.size, name=path, headers=headers, retry=self.retry)

        snap.opener = opener


def list_org_repos(
    org: str,
    include_forks: bool = False,
    include_archived: bool = False,
    token: str | None = None,
    api_url: str | None = None,
) -> list[str]:
    """`owner/name` of every repo of an organisation (or user), forks and archived repos skipped unless asked."""
    api = GitHubAPI(token, api_url)
    try:
        repos = api.paginate(f"/orgs/{quote(org)}/repos", params={"type": "all"}, what=f"github:{org}")
    except SourceError as exc:
        if exc.rule != "source.not_found":
            raise
        try:
            repos = api.paginate(f"/users/{quote(org)}/repos", params={"type": "owner"}, what=f"github:{org}")
        except SourceError as exc2:
            if exc2.rule == "source.not_found":
                raise SourceError(f"github:{org}: no such organisation or user", rule="source.not_found") from None
            raise
    out = []
    for r in repos:
        if r.get("fork") and not include_forks:
            continue
        if r.get("archived") and not include_archived:
            continue
        out.append(r.get("full_name") or f"{org}/{r.get('name')}")
    return sorted(out)
