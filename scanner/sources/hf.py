"""A model repo on the Hugging Face Hub (or a Hub-compatible server named by HF_ENDPOINT).

What a snapshot costs: one `model_info(files_metadata=True)` call (file list with sizes and LFS sha256, so an
exact-copy check reads 0 weight bytes), one GET per small file (card, SMALL_JSON_FILES, LICENSE/NOTICE/USE_POLICY),
and nothing else; weights are read later by HTTP Range through `Snapshot.open`. With a cache, a rescan of an
unchanged repo is one `model_info(expand=["sha"])` call and 0 weight bytes; in a sweep, none (its organisation's
listing gave the commit: `listed_commits`).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import requests

from scanner import interrupt
from scanner.errors import SourceError
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
from scanner.sources.local import MAX_FILES

if TYPE_CHECKING:  # only for annotations: imported lazily, it is slow to import
    from huggingface_hub import HfApi

T = TypeVar("T")
HF_TIMEOUT = 30.0
COMMIT = re.compile(r"[0-9a-f]{40}")
SHA256 = re.compile(r"[0-9a-f]{64}")
_client_lock = threading.Lock()
_client_configured = False


def _configure_hf_client() -> None:
    """huggingface_hub's default client has no timeout; install one that does (same hooks otherwise)."""
    global _client_configured
    if _client_configured:
        return
    with _client_lock:
        if _client_configured:
            return
        import httpx2
        from huggingface_hub import set_client_factory
        from huggingface_hub.utils._http import hf_request_event_hook

        def factory() -> httpx2.Client:
            def count(request: httpx2.Request) -> None:
                http.SENT.add()

            return httpx2.Client(
                event_hooks={"request": [hf_request_event_hook, count]},
                follow_redirects=True,
                timeout=httpx2.Timeout(HF_TIMEOUT, connect=10.0),
                transport=_bounded_transport(),
                headers={"Accept-Encoding": "gzip, deflate"},  # what http.BoundedDecoder reads
            )

        set_client_factory(factory)
        # Its backoff logs a warning per attempt ("Retrying in 1s"): a failure is reported once, by originscan.
        logging.getLogger("huggingface_hub.utils._http").setLevel(logging.ERROR)
        _client_configured = True


def _bounded_transport() -> Any:
    """httpx's transport with the bounds http.request puts on every answer: the whole answer within
    http.request_seconds() (a body that drips forever passes any read timeout) and at most http.MAX_API_BYTES
    once decompressed (a gzip bomb, a listing of millions of files). The body is decoded here, within the bound,
    and handed on without its Content-Encoding."""
    import httpx2

    class Bounded(httpx2.SyncByteStream):
        def __init__(self, inner: Any, decoder: http.BoundedDecoder, deadline: float):
            self.inner, self.decoder, self.deadline = inner, decoder, deadline

        def __iter__(self) -> Any:
            for raw in self.inner:
                if time.monotonic() > self.deadline:
                    raise SourceError(
                        f"{self.decoder.label}: no complete answer within {http.request_seconds():.0f} s "
                        "(a body that never ends?)",
                        rule="source.unreachable",
                    )
                out = self.decoder.feed(raw)
                if self.decoder.total > self.decoder.limit:
                    bomb = " once decompressed (a compression bomb?)" if self.decoder.compressed else ""
                    raise SourceError(
                        f"{self.decoder.label}: answer is over the {self.decoder.limit}-byte budget{bomb}",
                        rule="source.too_large",
                    )
                yield out

        def close(self) -> None:
            self.inner.close()

    class Transport(httpx2.HTTPTransport):
        def handle_request(self, request: httpx2.Request) -> httpx2.Response:
            deadline = time.monotonic() + http.request_seconds()
            interrupt.check()  # Ctrl-C: huggingface_hub's own retry loop ends here too
            http.BREAKER.check(str(request.url))  # a host that kept refusing connections is not asked again
            try:
                response = super().handle_request(request)
            except httpx2.TransportError as exc:  # refused, dropped or silent: no HTTP answer at all
                http.BREAKER.failed(str(request.url), type(exc).__name__)
                raise
            http.BREAKER.answered(str(request.url))
            label = http.redact(str(request.url))
            try:
                decoder = http.BoundedDecoder(response.headers.get("Content-Encoding"), http.MAX_API_BYTES, label)
            except SourceError:
                response.close()
                raise
            headers = [
                (k, v) for k, v in response.headers.raw if k.lower() not in (b"content-encoding", b"content-length")
            ]
            return httpx2.Response(
                response.status_code,
                headers=headers,
                stream=Bounded(response.stream, decoder, deadline),
                extensions=response.extensions,
            )

    return Transport()


def hub_endpoint(endpoint: str | None) -> str:
    """HF_ENDPOINT read at call time (huggingface_hub reads it once, at import)."""
    from huggingface_hub import constants

    return (endpoint or os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def _api(endpoint: str | None, token: str | None) -> HfApi:
    _configure_hf_client()
    from huggingface_hub import HfApi

    return HfApi(endpoint=hub_endpoint(endpoint), token=token)


# The Hub's download URLs, by repo type (huggingface_hub's constants.REPO_TYPES_URL_PREFIXES).
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}


def resolve_url(endpoint: str, repo_id: str, path: str, revision: str, repo_type: str = "model") -> str:
    """The download URL of one file of a Hub repo at `revision`: the URL huggingface_hub's hf_hub_url builds, the
    repo id checked the same way, without importing its download module (about 20 ms of start-up, with tqdm and
    asyncio, on every remote command)."""
    from huggingface_hub.utils import validate_repo_id  # type: ignore[attr-defined]  # re-exported lazily

    validate_repo_id(repo_id)
    return f"{endpoint}/{URL_PREFIXES[repo_type]}{repo_id}/resolve/{quote(revision, safe='')}/{quote(path)}"


def hub_api(endpoint: str | None, token: str | None) -> HfApi:
    """The Hub client this module configures (timeouts, retries, Ctrl-C), for calls beyond one repo's snapshot
    (watch listings, index updates, dataset look-ups)."""
    return _api(endpoint, token)


def _status(exc: BaseException) -> int | None:
    resp = getattr(exc, "response", None)
    return getattr(resp, "status_code", None)


def hub_call(
    label: str, fn: Callable[..., T], *args: Any, retry: http.RetryPolicy = http.DEFAULT_RETRY, **kwargs: Any
) -> T:
    """Retry a huggingface_hub call on 429/5xx/network errors (the library does not for model_info)."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    def once() -> T:
        try:
            return fn(*args, **kwargs)
        except SourceError:
            raise  # a bound of _bounded_transport's: retrying would meet it again
        except HfHubHTTPError as exc:
            code = _status(exc)
            if code not in http.RETRY_STATUSES:
                raise
            raise http.Retryable(
                f"HTTP {code}", http.parse_retry_after(exc.response.headers.get("Retry-After"))
            ) from None
        except (httpx2.TransportError, OSError) as exc:
            raise http.Retryable(type(exc).__name__) from None

    return http.retrying(once, label, retry)


def hub_auth_headers(token: str | None) -> dict[str, str]:
    from huggingface_hub.utils import build_hf_headers  # type: ignore[attr-defined]  # re-exported lazily

    headers = build_hf_headers(token=token)
    return {k: v for k, v in headers.items() if k.lower() in ("authorization", "user-agent")}


def _check_served(resp: http.Answer | requests.Response, revision: str | None, size: int | None, label: str) -> None:
    """The Hub names the commit it served (X-Repo-Commit) and an LFS file's size (X-Linked-Size), on the answer
    itself or on the redirect to the CDN: a repo listed at one commit must not be read at another, and an LFS file
    must have the size the listing gave it."""
    seen = [*resp.history, resp]
    served = next((r.headers["X-Repo-Commit"].strip() for r in seen if r.headers.get("X-Repo-Commit")), None)
    if revision and COMMIT.fullmatch(revision) and served and served != revision:
        raise SourceError(
            f"{label}: the repo changed while it was read (listed at commit {revision[:12]}, served from "
            f"{served[:12]!r})",
            rule="source.changed",
        )
    linked = next((r.headers["X-Linked-Size"].strip() for r in seen if r.headers.get("X-Linked-Size")), None)
    if size is not None and linked is not None and linked != str(size):
        raise SourceError(
            f"{label}: the listing gives {size} bytes but the file served has {linked[:24]!r}", rule="source.malformed"
        )


_fetch_lock = threading.Lock()
_fetching: dict[str, tuple[threading.Lock, int]] = {}  # content key -> (its lock, threads holding or awaiting it)


@contextmanager
def one_fetch(key: str | None) -> Iterator[None]:
    """Threads of one process wanting the same small file by content (sweep workers, each reading the LICENSE
    every repo of an organisation ships) take turns: the first downloads it into the cache, the others then find
    it there instead of downloading it too. None: no key or no cache, nothing to share."""
    if key is None:
        yield
        return
    with _fetch_lock:
        lock, users = _fetching.get(key, (threading.Lock(), 0))
        _fetching[key] = (lock, users + 1)
    try:
        with lock:
            yield
    finally:
        with _fetch_lock:
            lock, users = _fetching[key]
            if users == 1:
                del _fetching[key]
            else:
                _fetching[key] = (lock, users - 1)


_listed: dict[str, str] | None = None  # repo id -> the commit its organisation's listing gave, inside listed_commits


@contextmanager
def listed_commits() -> Iterator[None]:
    """Within: an organisation's listing (list_org_models) keeps the commit the Hub gave for each repo, and the
    snapshot of an unpinned repo trusts it instead of asking model_info(expand=["sha"]): a cached record at that
    commit is used with no request of its own (a sweep of unchanged repos costs its listing), one at another commit
    is read again at once. A repo pushed after the listing is scanned as listed, its push seen by the next run."""
    global _listed
    _listed = {}
    try:
        yield
    finally:
        _listed = None


def _wants(path: str) -> bool:
    return path in SMALL_JSON_FILES or is_text_file(path)


class HFSource:
    kind = "hf"

    def __init__(
        self,
        repo_id: str,
        revision: str | None = None,
        token: str | None = None,
        *,
        endpoint: str | None = None,
        target: str | None = None,
        cache: Cache | None | bool = None,
        retry: http.RetryPolicy = http.DEFAULT_RETRY,
        known: Mapping[str, bytes] | None = None,
    ):
        """`known`: small files the caller already read whole at `revision` (the watch's config.json), used instead
        of a second download of the same bytes."""
        self.repo_id = repo_id
        self.revision = revision
        self.known = dict(known or {})
        self.token = token
        self.endpoint = endpoint
        self.target = target or f"hf:{repo_id}" + (f"@{revision}" if revision else "")
        self.cache = resolve_cache(cache)
        self.retry = retry

    def __repr__(self) -> str:  # never shows the token
        return f"HFSource({self.repo_id!r}, revision={self.revision!r})"

    # -- public -------------------------------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        from huggingface_hub.errors import (
            GatedRepoError,
            HfHubHTTPError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )

        api = _api(self.endpoint, self.token)
        label = self.target
        record = self.cache.get_record("hf", self.repo_id, self.revision) if self.cache else None
        listed = _listed.get(self.repo_id) if _listed is not None and self.revision is None else None
        try:
            if record is not None:
                sha = listed or (
                    hub_call(
                        label, api.model_info, self.repo_id, revision=self.revision, expand=["sha"], retry=self.retry
                    ).sha
                )
                if sha and sha == record.get("revision") and record_is_current(record.get("snapshot")):
                    snap = snapshot_from_record(self.target, "hf", record["snapshot"])
                    snap.meta["cache"] = "hit"
                    self._set_opener(snap)
                    return snap
            info = hub_call(
                label, api.model_info, self.repo_id, revision=self.revision, files_metadata=True, retry=self.retry
            )
        except (TypeError, ValueError, KeyError, AttributeError) as exc:  # huggingface_hub parsing a hostile answer
            raise SourceError(
                f"{label}: the Hub's answer is malformed ({type(exc).__name__})", rule="source.malformed"
            ) from None
        except RevisionNotFoundError:
            raise SourceError(f"{label}: revision {self.revision!r} not found", rule="source.not_found") from None
        except GatedRepoError:
            return self._unverifiable(
                f"{label}: gated repo; set HF_TOKEN to a token that has been granted access", gated=True
            )
        except RepositoryNotFoundError as exc:
            if _status(exc) in (401, 403):
                return self._unverifiable(
                    f"{label}: repository not visible without credentials (private, or it "
                    "does not exist); set HF_TOKEN to a token that can read it",
                    private=True,
                )
            raise SourceError(f"{label}: repository not found", rule="source.not_found") from None
        except HfHubHTTPError as exc:
            if _status(exc) in (401, 403):
                return self._unverifiable(
                    f"{label}: access denied (HTTP {_status(exc)}); a token with access is needed", private=True
                )
            raise SourceError(f"{label}: Hub answered HTTP {_status(exc)}", rule="source.unreachable") from None

        snap = self._from_info(info)
        if self.cache is not None and not any(p.rule == "source.unverifiable" for p in snap.problems):
            self.cache.put_record(
                "hf", self.repo_id, self.revision, {"revision": snap.revision, "snapshot": snapshot_to_record(snap)}
            )
        snap.meta["cache"] = "miss" if self.cache is not None else "off"
        return snap

    # -- internals ----------------------------------------------------------------------------------------------
    def _unverifiable(self, message: str, **meta: Any) -> Snapshot:
        snap = Snapshot(target=self.target, kind="hf", name=self.repo_id, revision=None)
        snap.meta.update(meta)
        snap.problem("source.unverifiable", message)
        return snap

    def _set_opener(self, snap: Snapshot) -> None:
        endpoint = hub_endpoint(self.endpoint)
        rev = snap.revision or self.revision or "main"
        headers = hub_auth_headers(self.token)

        def opener(path: str) -> http.HTTPRangeByteSource:
            entry = snap.files.get(path)
            if entry is None:
                raise OSError(f"{self.target}: no file {path}")
            url = resolve_url(endpoint, self.repo_id, path, rev)

            def check(resp: http.Answer) -> None:
                _check_served(resp, rev, entry.size, f"{self.target}: {path}")

            return http.HTTPRangeByteSource(url, entry.size, name=path, headers=headers, retry=self.retry, check=check)

        snap.opener = opener

    def _from_info(self, info: Any) -> Snapshot:
        snap = Snapshot(target=self.target, kind="hf", name=info.id or self.repo_id, revision=info.sha)
        card = info.card_data.to_dict() if info.card_data is not None and hasattr(info.card_data, "to_dict") else None
        snap.meta.update(
            {
                "gated": info.gated or False,
                "private": bool(info.private),
                "tags": list(info.tags or []),
                "library_name": info.library_name,
                "pipeline_tag": info.pipeline_tag,
                "card_data": card,
                "last_modified": info.last_modified.isoformat() if info.last_modified else None,
            }
        )
        blob_ids: dict[str, str] = {}
        siblings = list(info.siblings or [])
        if len(siblings) > MAX_FILES:
            snap.problem(
                "source.too_large", f"the Hub lists {len(siblings)} files, over {MAX_FILES}; the rest were not read"
            )
        bad = 0
        for s in siblings[:MAX_FILES]:
            size = s.lfs.size if s.lfs is not None else (s.size or 0)
            sha = s.lfs.sha256 if s.lfs is not None else None
            # The listing is the server's word: a name, size or hash of the wrong type is dropped, not trusted.
            if not (isinstance(s.rfilename, str) and s.rfilename and isinstance(size, int) and size >= 0) or not (
                sha is None or (isinstance(sha, str) and SHA256.fullmatch(sha))
            ):
                bad += 1
                continue
            snap.files[s.rfilename] = RepoFile(s.rfilename, size, sha)
            if s.lfs is None and isinstance(s.blob_id, str) and s.blob_id:
                blob_ids[s.rfilename] = s.blob_id
        if bad:
            snap.problem("source.malformed", f"the Hub's file listing has {bad} malformed entries; they were skipped")
        self._set_opener(snap)
        headers = hub_auth_headers(self.token)
        denied = False
        for path in sorted(snap.files):
            if not (_wants(path) or snap.wants_text(path)) or denied:
                continue
            entry = snap.files[path]
            limit = json_limit(path) if path in SMALL_JSON_FILES else MAX_TEXT_BYTES
            if path in SMALL_JSON_FILES and entry.size > limit:
                snap.problem(
                    "source.too_large",
                    f"{path} is {entry.size} bytes, over the {limit}-byte limit; not parsed",
                    path=path,
                )
                continue
            key = entry.sha256 or (f"git-{blob_ids[path]}" if path in blob_ids else None)
            data = self.known.get(path)
            with one_fetch(key if self.cache is not None else None):
                if data is None or len(data) != entry.size:  # only the whole file, as listed, stands in for a download
                    data = self.cache.get_blob(key) if (self.cache is not None and key) else None
                if data is None:
                    try:
                        data = self._download(path, snap.revision, min(entry.size, limit), headers)
                    except SourceError as exc:
                        if exc.rule == "source.unverifiable":
                            snap.problem(
                                "source.unverifiable",
                                f"{self.target}: {path} is not readable without "
                                "access (gated or private); set HF_TOKEN to a token that has been granted "
                                "access",
                                path=path,
                                gated=snap.meta.get("gated"),
                            )
                            denied = True  # one finding, not one per file
                        else:
                            snap.problem(exc.rule, str(exc), path=path)
                        continue
                    if self.cache is not None and key and len(data) == entry.size:
                        self.cache.put_blob(data, key)
            if path in SMALL_JSON_FILES:
                value = parse_json(data, path, snap)
                if value is not None:
                    snap.jsons[path] = value
            else:
                if entry.size > MAX_TEXT_BYTES:
                    snap.problem(
                        "source.too_large",
                        f"{path} is {entry.size} bytes; only the first {MAX_TEXT_BYTES} were read",
                        path=path,
                    )
                snap.keep_text(path, decode_text(data[:MAX_TEXT_BYTES], path, snap))
        return snap

    def _download(
        self, path: str, revision: str | None, limit: int, headers: dict[str, str], repo_type: str = "model"
    ) -> bytes:
        url = resolve_url(
            hub_endpoint(self.endpoint), self.repo_id, path, revision or self.revision or "main", repo_type
        )
        label = f"{self.target}: {path}"
        for _ in range(self.retry.max_tries):
            deadline = time.monotonic() + http.request_seconds()
            resp = http.request("GET", url, headers=headers, stream=True, retry=self.retry, what=label)
            with resp:
                if resp.status_code != 200:
                    raise http.status_error(resp, label)
                _check_served(resp, revision, None, label)
                try:
                    return http.read_body(resp, limit, label, deadline, truncate=True)
                except http.NETWORK_ERRORS:
                    continue  # dropped mid-body: a small file is simply fetched again
        raise SourceError(f"{label}: connection kept failing", rule="source.unreachable")


# Repos per page of an organisation's listing: the most the Hub gives in one answer (`limit` is a page size there,
# the `Link` header names the next page; see tests/servers/hub.py for the sources). HfApi.list_models(limit=…) would
# cap the whole listing instead, so the pages are walked with huggingface_hub's own paginate.
LISTING_PAGE = 1000


def list_org_models(org: str, token: str | None = None, endpoint: str | None = None) -> list[str]:
    """Repo ids (`org/name`) of every model of a user or organisation: one request per LISTING_PAGE repos."""
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.utils import build_hf_headers, paginate  # type: ignore[attr-defined]  # re-exported lazily

    _configure_hf_client()
    url = f"{hub_endpoint(endpoint)}/api/models"
    # `sha` (the main branch's commit; an expand key of the Hub's listing, as huggingface.js's MODEL_EXPANDABLE_KEYS
    # lists) lets a sweep skip each unchanged repo's own sha request (listed_commits)
    params: dict[str, Any] = {"author": org, "limit": LISTING_PAGE}
    if _listed is not None:
        params["expand"] = ["sha"]

    def ids() -> list[str]:
        items = paginate(url, params=params, headers=build_hf_headers(token=token))
        found = {}
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                sha = item.get("sha")
                found[item["id"]] = sha if isinstance(sha, str) and COMMIT.fullmatch(sha) else None
        if _listed is not None:
            _listed.update({rid: sha for rid, sha in found.items() if sha})
        return sorted(found)

    try:
        return hub_call(f"hf:{org}", ids)
    except HfHubHTTPError as exc:
        raise SourceError(f"hf:{org}: listing models failed (HTTP {_status(exc)})", rule="source.unreachable") from None


def read_small_file(
    repo_id: str,
    path: str,
    token: str | None = None,
    endpoint: str | None = None,
    retry: http.RetryPolicy = http.DEFAULT_RETRY,
    revision: str | None = None,
    kind: str = "model",
) -> bytes | None:
    """The first MAX_TEXT_BYTES of one file of a Hub repo (`kind` "model" or "dataset") at `revision` (default:
    main); None when it is absent, gated or unreachable."""
    source = HFSource(repo_id, token=token, endpoint=endpoint, cache=False, retry=retry)
    try:
        return source._download(path, revision, MAX_TEXT_BYTES, hub_auth_headers(token), repo_type=kind)
    except (SourceError, OSError):
        return None


def read_text_file(
    repo_id: str,
    path: str,
    token: str | None = None,
    endpoint: str | None = None,
    retry: http.RetryPolicy = http.DEFAULT_RETRY,
    revision: str | None = None,
    kind: str = "model",
) -> str | None:
    """One small text file of a Hub repo (read_small_file, decoded), e.g. a base model's or a dataset's card; None
    when it is absent, gated or unreachable: such a card is extra evidence, never a reason to fail the scan."""
    data = read_small_file(repo_id, path, token, endpoint, retry, revision, kind)
    return None if data is None else data.decode("utf-8", errors="replace")
