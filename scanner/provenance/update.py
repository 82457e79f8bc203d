"""`originscan index update`: fingerprints of the knowledge base's upstreams, pulled from the Hub by range reads.

Per upstream:
  1. one revision check (`model_info(expand=["sha"])`); unchanged since the last update → nothing else is asked;
  2. the file list with every weight file's LFS sha256 and size (`files_metadata=True`): exact copies are then
     recognised with 0 weight bytes read, gated upstreams included (the Hub shows their metadata to everyone);
  3. the safetensors headers and the few token rows and residual vectors the comparison needs (REMOTE_PLAN:
     under 2 MB for an 8B model), read by HTTP Range from the upstream, with HF_TOKEN when it is set, or else
     from a mirror the knowledge base lists whose weight files carry the same sha256 as the official ones.
When the weights cannot be read the upstream keeps its hashes (exact copies only: states "gated", "unreadable",
"hashes-only") and the reason
is recorded and printed once per update, never on each scan. A failure on one upstream never touches another's
entry: what was stored before stays.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scanner import __version__, interrupt
from scanner.errors import SourceError
from scanner.file_formats import SAFETENSORS, format_of, is_weight_file
from scanner.knowledge import Upstream, data_dir
from scanner.provenance.fingerprint import FORMAT, REMOTE_PLAN, Fingerprint, WeightFile, build, hashes_only
from scanner.provenance.index import Index, UpstreamState
from scanner.provenance.quantized import DequantizingModel
from scanner.sources.bytesource import ByteSource
from scanner.sources.http import HostUnreachable

WORKERS = 4  # upstreams fetched at once (each also reads its rows several ranges at a time)


@dataclass
class UpdateResult:
    id: str
    # fingerprinted | unchanged | hashes-only (no safetensors) | gated (hashes only until a token or mirror
    # reads it) | unreadable (hashes only: reading failed, retried next time) | unverifiable | not-found | unreachable
    state: str
    revision: str | None = None
    origin: str | None = None  # where the weights were read: the upstream itself or a verified mirror
    detail: str = ""
    bytes_fetched: int = 0  # weight bytes read by range (headers, rows, vectors)
    requests: int = 0  # Hub API calls and range requests
    hub_down: bool = False  # the Hub refused connections again and again (http.Breaker): the update stops
    seconds: float = 0.0
    fingerprint: Fingerprint | None = field(default=None, repr=False)

    def line(self) -> str:
        rev = f"@{self.revision[:12]}" if self.revision else ""
        where = f" from {self.origin}" if self.origin and self.origin != self.id else ""
        cost = f"{self.bytes_fetched:,} bytes, {self.requests} requests"
        detail = f": {self.detail}" if self.detail else ""
        return f"{self.id}{rev}: {self.state}{where} ({cost}){detail}"


def knowledge_hash(upstreams_file: str | Path | None = None) -> str:
    """Identity of the knowledge base the index was built from (every rules/ data file, or the given list)."""
    h = hashlib.sha256()
    files = [Path(upstreams_file)] if upstreams_file else sorted(data_dir("rules").rglob("*.yaml"))
    for p in files:
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def cache_key(upstreams_file: str | Path | None = None) -> str:
    """The Actions cache key of a fingerprint index: originscan's version, the fingerprint format and the knowledge
    base's hash."""
    return f"originscan-index-{__version__}-f{FORMAT}-{knowledge_hash(upstreams_file)}"


class _Hub:
    """The few Hub calls an update makes, counted."""

    def __init__(self, token: str | None):
        from scanner.sources.hf import hub_api

        self.token = token
        self.api = hub_api(None, token)
        self.requests = 0

    def revision(self, repo_id: str) -> str | None:
        from scanner.sources.hf import hub_call

        self.requests += 1
        return hub_call(f"hf:{repo_id}", self.api.model_info, repo_id, expand=["sha"]).sha

    def weight_files(self, repo_id: str, revision: str | None) -> tuple[str | None, list[WeightFile]]:
        from scanner.sources.hf import hub_call

        self.requests += 1
        info = hub_call(f"hf:{repo_id}", self.api.model_info, repo_id, revision=revision, files_metadata=True)
        files = []
        for s in info.siblings or []:
            if is_weight_file(s.rfilename):
                sha = s.lfs.sha256 if s.lfs is not None else None
                size = int(s.lfs.size) if s.lfs is not None else int(s.size or 0)
                files.append(WeightFile(s.rfilename, size, sha))
        return info.sha, sorted(files, key=lambda f: f.path)

    def open(self, repo_id: str, revision: str | None, f: WeightFile) -> ByteSource:
        from huggingface_hub import hf_hub_url

        from scanner.sources import http
        from scanner.sources.hf import hub_auth_headers, hub_endpoint

        url = hf_hub_url(repo_id, f.path, revision=revision or "main", endpoint=hub_endpoint(None))
        return http.HTTPRangeByteSource(url, f.size, name=f"{repo_id}/{f.path}", headers=hub_auth_headers(self.token))


def _hub_error(exc: BaseException) -> tuple[str, str] | None:
    """(state, detail) for the Hub's answers that mean "not found" or "not visible"; None for anything else."""
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(exc, GatedRepoError):
        return "unverifiable", "gated and not visible without a token"
    if isinstance(exc, RepositoryNotFoundError):
        if status in (401, 403):
            return "unverifiable", "not visible without credentials (private?)"
        return "not-found", "no such repository on the Hub"
    if isinstance(exc, HfHubHTTPError):
        if status in (401, 403):
            return "unverifiable", f"access denied (HTTP {status})"
        return "unreachable", f"Hub answered HTTP {status}"
    return None


def _safetensors(files: list[WeightFile]) -> list[WeightFile]:
    """An upstream's fingerprint is read from its safetensors."""
    return [f for f in files if format_of(f.path) is SAFETENSORS]


def _read_fingerprint(
    hub: _Hub,
    repo_id: str,
    revision: str | None,
    files: list[WeightFile],
    upstream: Upstream,
    all_files: list[WeightFile],
) -> tuple[Fingerprint, int, int]:
    """Headers and rows through range reads. Raises SourceError (rule source.unverifiable when access is denied)."""
    sources = {f.path: hub.open(repo_id, revision, f) for f in files}
    try:
        first = sources[files[0].path]
        first.read(0, 8)  # access is decided here, before anything is parsed
        model = DequantizingModel(sources, upstream.config or None, {f.sha256 for f in all_files if f.sha256})
        # a shard whose header could not be read or parsed would leave a partial tensor table: nothing is stored
        fatal = [p for p in model.problems if p.startswith(tuple(f"{f}:" for f in sources))]
        if fatal or model.malformed:
            raise SourceError(
                f"{repo_id}: {'; '.join(fatal or model.problems)[:300]}",
                rule="source.malformed" if model.malformed else "source.unreachable",
            )
        fp = build(model, REMOTE_PLAN, files=all_files)
        return fp, model.bytes_read, sum(getattr(s, "requests", 0) for s in sources.values())
    finally:
        for s in sources.values():
            s.close()


def fetch_upstream(up: Upstream, previous: UpstreamState | None, token: str | None) -> UpdateResult:
    """Everything one upstream needs, from the Hub; never raises (a failure is a result with a state)."""
    started = time.perf_counter()
    hub = _Hub(token)
    result = UpdateResult(up.id, "unreachable")
    try:
        _fetch(up, previous, hub, result)
    except SourceError as exc:
        result.state, result.detail = "unreachable", str(exc)[:300]
        result.hub_down = isinstance(exc, HostUnreachable)
    except Exception as exc:  # the Hub client's own errors, one line each
        known = _hub_error(exc)
        result.state, result.detail = known if known else ("unreachable", f"{type(exc).__name__}: {str(exc)[:200]}")
    result.requests += hub.requests
    result.seconds = time.perf_counter() - started
    return result


def _fetch(up: Upstream, previous: UpstreamState | None, hub: _Hub, result: UpdateResult) -> None:
    repo_id, revision = None, None
    for candidate in (up.id, *up.aliases):  # a renamed release is found under its other ids
        try:
            revision = hub.revision(candidate)
            repo_id = candidate
            break
        except Exception as exc:
            known = _hub_error(exc)
            if known is not None and known[0] == "unverifiable" and up.mirrors:
                # The official repo is not visible at all: a listed mirror, unverified, is better than nothing.
                if (
                    previous is not None
                    and previous.state == "fingerprinted"
                    and previous.origin in up.mirrors
                    and hub.revision(previous.origin) == previous.revision
                ):
                    result.state, result.origin, result.revision = "unchanged", previous.origin, previous.revision
                    result.detail = previous.detail
                    return
                if not _from_mirrors(up, hub, None, None, result, [f"{candidate}: {known[1]}"]):
                    result.state, result.detail = known
                return
            if known is None or known[0] != "not-found":
                raise
    if repo_id is None:
        result.state, result.detail = (
            "not-found",
            "no such repository on the Hub" + (f" (aliases tried: {', '.join(up.aliases)})" if up.aliases else ""),
        )
        return
    result.revision = revision
    if (
        previous is not None
        and previous.revision == revision
        and (previous.state in ("fingerprinted", "hashes-only") or (previous.state == "gated" and not hub.token))
    ):
        result.state, result.origin = "unchanged", previous.origin
        result.detail = previous.detail if previous.state != "fingerprinted" else ""
        return
    revision, files = hub.weight_files(repo_id, revision)
    result.revision = revision
    weight_bytes = sum(f.size for f in files)
    tensors = _safetensors(files)
    result.fingerprint = hashes_only(files, weight_bytes)
    if not tensors:
        result.state, result.detail = "hashes-only", "no safetensors weights to fingerprint (exact copies only)"
        return
    try:
        _read_into(result, hub, repo_id, revision, tensors, up, files)
        return
    except SourceError as exc:
        if exc.rule != "source.unverifiable":
            result.state, result.detail = "unreadable", f"weights unreadable ({str(exc)[:200]}); exact copies only"
            return
    # Gated: a mirror whose weight files are byte-identical to the official ones (sha256 from the Hub's metadata).
    notes: list[str] = []
    if _from_mirrors(up, hub, {f.sha256 for f in tensors}, files, result, notes):
        return
    why = "gated: set HF_TOKEN to a token with access" + (
        "" if up.mirrors else ", or list a byte-identical mirror in the knowledge base"
    )
    result.state = "gated"
    result.detail = "; ".join([why, *notes]) + " (exact copies only)"


def _read_into(
    result: UpdateResult,
    hub: _Hub,
    repo_id: str,
    revision: str | None,
    tensors: list[WeightFile],
    up: Upstream,
    files: list[WeightFile],
) -> None:
    fp, nbytes, nreq = _read_fingerprint(hub, repo_id, revision, tensors, up, files)
    result.bytes_fetched, result.requests = nbytes, nreq
    result.origin = repo_id
    if fp.kind == "rows":
        result.state, result.fingerprint = "fingerprinted", fp
    else:  # headers read, but no token matrix to align on (e.g. a quantisation originscan does not decode)
        result.state, result.detail = "hashes-only", "no comparable token matrix in the weights (exact copies only)"
        result.fingerprint = fp


def _from_mirrors(
    up: Upstream,
    hub: _Hub,
    official: set[str | None] | None,
    files: list[WeightFile] | None,
    result: UpdateResult,
    notes: list[str],
) -> bool:
    """Read the first listed mirror whose safetensors files carry the official sha256s (or, when the official
    metadata is not visible at all, the first readable mirror, marked unverified)."""
    for mirror in up.mirrors:
        try:
            m_rev, m_files = hub.weight_files(mirror, None)
        except Exception as exc:
            known = _hub_error(exc)
            notes.append(f"mirror {mirror}: {known[1] if known else type(exc).__name__}")
            continue
        m_tensors = _safetensors(m_files)
        if not m_tensors or (official is not None and ({f.sha256 for f in m_tensors} != official or None in official)):
            notes.append(f"mirror {mirror} is not byte-identical to the official weights")
            continue
        try:
            _read_into(result, hub, mirror, m_rev, m_tensors, up, files if files is not None else m_files)
        except SourceError as exc:
            notes.append(f"mirror {mirror}: {str(exc)[:120]}")
            continue
        if official is None:
            result.revision = m_rev
            result.detail = "; ".join(
                notes
                + [f"read from mirror {mirror}, unverified: the official metadata is not visible to compare sha256s"]
            )
        else:
            result.detail = "gated upstream read from a mirror whose weight files have the official sha256"
        return True
    return False


def update_index(
    index: Index,
    upstreams: list[Upstream],
    token: str | None = None,
    workers: int = WORKERS,
    log: Callable[[str], Any] = print,
) -> list[UpdateResult]:
    """Fetch every upstream (several at once) and store what came back; the index is only written here.

    When the Hub stops answering connections at all (http.Breaker), the update stops: one line says so, and the
    upstreams not fetched keep their entries (they are not in the results). Ctrl-C cancels what has not started."""
    states = index.states()
    results: list[UpdateResult] = []
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="originscan-update")
    futures = [pool.submit(fetch_upstream, up, states.get(up.id), token) for up in upstreams]
    try:
        for up, fut in zip(upstreams, futures):
            r = fut.result()
            if r.hub_down:
                interrupt.abandon(pool, futures)
                raise HubDown(
                    f"{r.detail}; stopped after {len(results)} of {len(upstreams)} upstreams (the index "
                    "keeps what it had)"
                )
            _store(index, up, r)
            log(r.line())
            results.append(r)
    except BaseException:
        interrupt.abandon(pool, futures)
        raise
    pool.shutdown()
    return results


class HubDown(SourceError):
    """The Hub refused every connection: an update cannot go on (nothing was stored for the upstreams left)."""


def _store(index: Index, up: Upstream, r: UpdateResult) -> None:
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    if r.state == "unchanged":
        return
    if r.fingerprint is not None:
        keep = index.model(up.id)
        # hashes alone never replace a readable fingerprint of the same weights stored by an earlier update
        if (
            r.fingerprint.kind == "rows"
            or keep is None
            or not index.has_fingerprint(keep.fingerprint, "rows")
            or keep.revision != r.revision
        ):
            index.put(up.id, r.fingerprint, up.license, f"hf:{up.id}", r.revision)
        index.set_state(UpstreamState(up.id, r.revision, r.state, r.origin, r.detail, now))
    elif index.model(up.id) is None or r.state == "not-found":
        index.set_state(UpstreamState(up.id, r.revision, r.state, r.origin, r.detail, now))
    # unreachable with an older entry: the older entry and its state stay (it is still right for that revision)


def summary(results: list[UpdateResult]) -> str:
    counts: dict[str, int] = {}
    for r in results:
        counts[r.state] = counts.get(r.state, 0) + 1
    parts = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    total = sum(r.bytes_fetched for r in results)
    return f"{len(results)} upstreams: {parts}; {total:,} weight bytes fetched"
