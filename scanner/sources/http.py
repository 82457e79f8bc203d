"""HTTP plumbing shared by the remote sources: sessions with timeouts, bounded retries, and range reads.

Every request goes through `request()`: a timeout on every call, retries with exponential backoff on 429/5xx and
network errors (honouring `Retry-After`), and a bound on the total time spent waiting. Nothing here logs or
formats request headers, so tokens never reach output.
"""

from __future__ import annotations

import contextlib
import email.utils
import os
import re
import threading
import time
import urllib.parse
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import requests
import urllib3
from requests.adapters import HTTPAdapter

from scanner import interrupt
from scanner.errors import SourceError
from scanner.sources.bytesource import ByteSource

try:  # pragma: no cover - version is informational only
    from scanner import __version__ as _VERSION
except Exception:  # pragma: no cover
    _VERSION = "0"

USER_AGENT = f"originscan/{_VERSION}"
# (connect, read) seconds: a silent server fails a call instead of hanging the scan.
DEFAULT_TIMEOUT: tuple[float, float] = (10.0, 60.0)
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
NETWORK_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
# A whole answer (headers and body) must arrive within this many seconds: a read timeout alone never ends a body
# that drips one byte at a time. ORIGINSCAN_REQUEST_SECONDS overrides it.
DEFAULT_REQUEST_SECONDS = 300.0
# An API answer (JSON) is read whole; past this many bytes, decompressed, it is refused (a listing bomb).
MAX_API_BYTES = 64 * 1024 * 1024


def request_seconds() -> float:
    value = os.environ.get("ORIGINSCAN_REQUEST_SECONDS", "")
    try:
        seconds = float(value)
    except ValueError:
        return DEFAULT_REQUEST_SECONDS
    return seconds if 0 < seconds < float("inf") else DEFAULT_REQUEST_SECONDS


class BoundedDecoder:
    """Decodes a body's Content-Encoding (none, gzip or deflate) without ever producing more than `limit` + 1
    bytes in all: a few kilobytes of gzip can inflate to gigabytes, and zlib's max_length stops that first."""

    def __init__(self, encoding: str | None, limit: int, label: str):
        enc = (encoding or "identity").strip().lower()
        if enc not in ("identity", "gzip", "x-gzip", "deflate"):
            raise SourceError(f"{label}: unsupported Content-Encoding {enc[:40]!r}", rule="source.malformed")
        # gzip: a gzip header; deflate: a zlib stream (RFC 9110), raw deflate when that fails on the first bytes
        self._zlib = None if enc == "identity" else zlib.decompressobj(zlib.MAX_WBITS | (16 if "gzip" in enc else 0))
        self._raw_deflate = enc == "deflate"
        self.compressed = self._zlib is not None
        self.limit = limit
        self.label = label
        self.total = 0

    def feed(self, data: bytes) -> bytes:
        """The decoded bytes of `data`, cut so that the total never passes limit + 1 (the caller sees it is over)."""
        room = self.limit - self.total + 1
        if room <= 0:
            return b""
        if self._zlib is None:
            out = data[:room]
        else:
            try:
                out = self._zlib.decompress(data, room)
            except zlib.error:
                if not (self._raw_deflate and self.total == 0):
                    raise SourceError(f"{self.label}: corrupt compressed body", rule="source.malformed") from None
                self._zlib, self._raw_deflate = zlib.decompressobj(-zlib.MAX_WBITS), False
                return self.feed(data)
        self.total += len(out)
        return out


def body_chunks(raw: urllib3.BaseHTTPResponse, label: str, deadline: float, chunk: int = 1 << 16) -> Iterator[bytes]:
    """The raw (still encoded) body of a streamed response (urllib3's, a requests.Response's `.raw`), chunk by chunk
    as the network delivers it, until `deadline` (time.monotonic()). read1 returns after one network read, so the
    deadline is checked even when the server sends one byte at a time; network faults come out as requests'
    exceptions, as iter_content's do."""
    while True:
        if time.monotonic() > deadline:
            raw.close()
            raise SourceError(
                f"{label}: no complete answer within {request_seconds():.0f} s (a body that never ends?)",
                rule="source.unreachable",
            )
        try:
            data = raw.read1(chunk, decode_content=False)
        except urllib3.exceptions.ReadTimeoutError:
            raise requests.Timeout("read timed out") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise requests.exceptions.ChunkedEncodingError(type(exc).__name__) from None
        if not data:
            return
        yield data


def read_body(resp: requests.Response, limit: int, label: str, deadline: float, truncate: bool = False) -> bytes:
    """A streamed response's decoded body: at most `limit` bytes (cut there when `truncate` and the body is not
    compressed, else SourceError)."""
    decoder = BoundedDecoder(resp.headers.get("Content-Encoding"), limit, label)
    out = bytearray()
    for data in body_chunks(resp.raw, label, deadline):
        out += decoder.feed(data)
        if len(out) > limit:
            if truncate and not decoder.compressed:  # a compressed body past the limit is a bomb, not a long file
                resp.close()
                return bytes(out[:limit])
            bomb = " once decompressed (a compression bomb?)" if decoder.compressed else ""
            raise SourceError(f"{label}: body is over the {limit}-byte budget{bomb}", rule="source.too_large")
    return bytes(out)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: base, 2·base, 4·base … capped at `max_wait`; gives up after `max_tries` attempts or
    once waiting again would take the total past `max_total` seconds. `Retry-After` wins over the backoff."""

    max_tries: int = 5
    base_wait: float = 0.5
    max_wait: float = 8.0
    max_total: float = 60.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return max(0.0, retry_after)
        return min(self.max_wait, self.base_wait * 2.0 ** (attempt - 1))


DEFAULT_RETRY = RetryPolicy()
T = TypeVar("T")
_sleep = interrupt.sleep  # ends early on Ctrl-C; tests may replace it


class BudgetSpent(SourceError):
    """The request was not sent: the run's request budget is spent (see RequestCounter.limited)."""


class RequestCounter:
    """HTTP requests this process sent (retries and huggingface_hub's own calls included). `originscan watch`
    gives it a budget: a request past it is refused before it is sent, whichever thread sends it, so work already
    in flight cannot run past the budget."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0
        self.limit: int | None = None  # the count no request may take it past
        self.refused = 0  # requests refused for the budget, ever

    def add(self, n: int = 1) -> None:
        with self._lock:
            if self.limit is not None and self.count + n > self.limit:
                self.refused += 1
                raise BudgetSpent(f"request budget spent ({self.limit} requests): not sent", rule="source.unreachable")
            self.count += n

    @contextlib.contextmanager
    def limited(self, budget: int) -> Iterator[None]:
        """At most `budget` more requests while the block runs."""
        with self._lock:
            saved, self.limit = self.limit, self.count + budget
        try:
            yield
        finally:
            with self._lock:
                self.limit = saved


SENT = RequestCounter()


class HostUnreachable(SourceError):
    """A host refused or dropped CONNECT_FAILURES connections in a row: it is not asked again in this run."""


class Breaker:
    """Per host, connection attempts that failed in a row (refused, no route, DNS, connect timeout: no HTTP answer
    at all). At CONNECT_FAILURES the host counts as down for the rest of the process, so an offline run fails in
    seconds instead of retrying every upstream for minutes. Any HTTP answer, even an error status, resets it."""

    CONNECT_FAILURES = 3

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fails: dict[str, int] = {}
        self.down: dict[str, str] = {}  # host -> the last failure's name

    @staticmethod
    def host(url: str) -> str:
        return urllib.parse.urlsplit(url).netloc.rsplit("@", 1)[-1].lower()

    def check(self, url: str) -> None:
        host = self.host(url)
        if host in self.down:
            raise HostUnreachable(
                f"{host}: not reachable ({self.CONNECT_FAILURES} connections failed in a row, last "
                f"{self.down[host]}); not tried again in this run",
                rule="source.unreachable",
            )

    def failed(self, url: str, why: str) -> None:
        host = self.host(url)
        with self._lock:
            self._fails[host] = self._fails.get(host, 0) + 1
            if self._fails[host] >= self.CONNECT_FAILURES:
                self.down.setdefault(host, why)

    def reset(self) -> None:
        with self._lock:
            self._fails.clear()
            self.down.clear()

    def answered(self, url: str) -> None:
        host = self.host(url)
        if self._fails.get(host):
            with self._lock:
                self._fails[host] = 0


BREAKER = Breaker()
_local = threading.local()


def _no_netrc(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """An auth hook that adds nothing: its presence keeps requests from sending .netrc credentials to any host."""
    return request


def new_session(pool_size: int = 32) -> requests.Session:
    """A Session with a connection pool sized for bounded parallel sweeps, no implicit retries (ours are explicit)
    and no environment `.netrc` credentials leaking into requests to arbitrary hosts."""
    s = requests.Session()
    s.trust_env = True  # proxies from the environment still apply …
    s.auth = _no_netrc  # … but requests only looks in ~/.netrc when a request has no auth of its own
    adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    s.headers["User-Agent"] = USER_AGENT
    s.headers["Accept-Encoding"] = "gzip, deflate"  # what BoundedDecoder reads (requests would offer br, zstd too)
    return s


_range_session: requests.Session | None = None
_range_lock = threading.Lock()


def range_session() -> requests.Session:
    """The one pooled Session whose adapter's urllib3 pools every weight range read of the process goes through
    (range_get), whichever thread reads: its connections stay open between batches of reads instead of one new TCP
    (and TLS) handshake per batch. Range reads send no cookies and change no session state, and urllib3's pool is
    thread-safe."""
    global _range_session
    with _range_lock:
        if _range_session is None:
            _range_session = new_session(pool_size=32)
        return _range_session


@dataclass(frozen=True)
class _Route:
    """How range reads reach one origin (scheme://host:port): the urllib3 pool requests' adapter would pick for it
    (proxy, TLS verification and CA bundle from the environment, as requests decides them) and whether the request
    line names the whole URL (a plain-HTTP proxy) or the path."""

    pool: urllib3.connectionpool.HTTPConnectionPool
    whole_url: bool


_routes: dict[str, _Route] = {}


def _route(url: str) -> _Route:
    """The origin's route, worked out once per process: requests' settings merge, environment look-ups and pool key
    cost more CPU than the request itself, and are the same for every range of every file on that host."""
    parts = urllib.parse.urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}".lower()
    route = _routes.get(origin)
    if route is None:
        session = range_session()
        adapter = session.get_adapter(url)
        if not isinstance(adapter, HTTPAdapter):  # pragma: no cover - new_session mounts nothing else
            raise SourceError(f"{redact(url)}: no HTTP adapter", rule="source.unreachable")
        settings = session.merge_environment_settings(url, {}, True, None, None)
        prepared = requests.Request("GET", url).prepare()
        try:
            pool = adapter.get_connection_with_tls_context(prepared, settings["verify"], settings["proxies"])
        except (urllib3.exceptions.LocationValueError, ValueError) as exc:
            raise SourceError(f"{redact(url)}: {type(exc).__name__}", rule="source.unreachable") from None
        if not isinstance(pool, urllib3.HTTPConnectionPool):  # pragma: no cover - HTTP(S) pools only
            raise SourceError(f"{redact(url)}: no HTTP connection pool", rule="source.unreachable")
        adapter.cert_verify(pool, url, settings["verify"], settings["cert"])  # type: ignore[no-untyped-call]
        whole_url = adapter.request_url(prepared, settings["proxies"]) != prepared.path_url
        route = _routes[origin] = _Route(pool, whole_url)
    return route


# Network faults of a range read, from urllib3 directly: every one may pass on another try (as requests' own
# ConnectionError, Timeout and SSLError, which `request` retries, wrap them).
RANGE_NETWORK_ERRORS = (
    urllib3.exceptions.ProtocolError,
    urllib3.exceptions.NewConnectionError,
    urllib3.exceptions.ConnectTimeoutError,
    urllib3.exceptions.ReadTimeoutError,
    urllib3.exceptions.ProxyError,
    urllib3.exceptions.SSLError,
    urllib3.exceptions.ClosedPoolError,
    OSError,
)
MAX_REDIRECTS = 30  # as requests


@dataclass(frozen=True)
class Answer:
    """What a range read's `check` sees of an answer: its status, headers, and the redirects that led to it."""

    status: int
    headers: Mapping[str, str]
    history: tuple[Answer, ...] = ()


@dataclass(frozen=True)
class Hop:
    """Where a range answer came from after its redirects: the URL and the headers sent there (never shown: they
    may hold a token, the URL a signature)."""

    url: str = field(repr=False)
    headers: Mapping[str, str] = field(repr=False)


def _timeout(value: Any) -> urllib3.Timeout:
    """requests' timeout forms: (connect, read) or one number for both."""
    if isinstance(value, urllib3.Timeout):
        return value
    connect, read = value if isinstance(value, tuple) else (value, value)
    return urllib3.Timeout(connect=connect, read=read)


def discard(resp: urllib3.BaseHTTPResponse) -> None:
    """An answer whose body is not wanted: its connection is closed (reading the rest could take forever)."""
    resp.close()
    resp.release_conn()


def range_get(
    url: str, headers: Mapping[str, str], timeout: Any, retry: RetryPolicy, label: str
) -> tuple[urllib3.BaseHTTPResponse, Answer, Hop]:
    """A GET for a byte range through urllib3's pool, redirects followed, with `request`'s guarantees: a timeout on
    every call, the same retries of 429/5xx and network faults, the request budget and the host breaker on every
    hop. requests would add about a millisecond of CPU per call on top of urllib3's third of one (settings merged,
    hooks, cookies, a Response built): a comparison at 8B makes 650 of them. Returns the streamed answer (any
    status that is not retried; the caller reads or closes it), its Answer and the Hop that gave it. The
    Authorization header is dropped on a redirect to another origin, as requests drops it; no .netrc is ever read."""
    sent = urllib3.HTTPHeaderDict({"User-Agent": USER_AGENT, "Accept": "*/*"})
    sent.update(headers)  # case-insensitive: the caller's User-Agent replaces ours, as in a requests Session
    limits = _timeout(timeout)

    def once() -> tuple[urllib3.BaseHTTPResponse, Answer, Hop]:
        at, ask = url, sent
        history: tuple[Answer, ...] = ()
        for _ in range(MAX_REDIRECTS + 1):
            BREAKER.check(at)
            route = _route(at)
            parts = urllib.parse.urlsplit(at)
            target = at if route.whole_url else (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            SENT.add()
            try:
                resp = route.pool.urlopen(
                    "GET",
                    target,
                    headers=ask,
                    redirect=False,
                    assert_same_host=False,
                    preload_content=False,
                    decode_content=False,
                    retries=False,
                    timeout=limits,
                )
            except RANGE_NETWORK_ERRORS as exc:
                if isinstance(exc, urllib3.exceptions.ClosedPoolError):
                    _routes.clear()  # the adapter evicted a pool we kept: look the routes up again
                BREAKER.failed(at, type(exc).__name__)  # no HTTP answer at all
                raise Retryable(type(exc).__name__) from None
            except urllib3.exceptions.HTTPError as exc:  # an invalid URL or header: retrying will not help
                raise SourceError(f"{label}: {type(exc).__name__}", rule="source.unreachable") from None
            BREAKER.answered(at)
            answer = Answer(resp.status, resp.headers, history)
            if resp.status in RETRY_STATUSES:
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                discard(resp)
                raise Retryable(f"HTTP {resp.status}", retry_after)
            location = resp.headers.get("Location")
            if resp.status not in (301, 302, 303, 307, 308) or not location:
                return resp, answer, Hop(at, ask)
            discard(resp)  # a redirect's body is never read: it might not end
            following = urllib.parse.urljoin(at, location)
            strip = range_session().should_strip_auth(at, following)  # type: ignore[no-untyped-call]
            if "Authorization" in ask and strip:
                ask = ask.copy()
                del ask["Authorization"]
            at, history = following, (*history, answer)
        raise SourceError(f"{label}: more than {MAX_REDIRECTS} redirects", rule="source.unreachable")

    return retrying(once, label, retry)


def get_session() -> requests.Session:
    """One Session per thread (requests' Session is not guaranteed thread-safe)."""
    s = getattr(_local, "session", None)
    if s is None:
        s = _local.session = new_session()
    return s


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP-date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


def redact(url: str) -> str:
    """A URL without userinfo or query string (either might carry a credential)."""
    url = re.sub(r"//[^/@]*@", "//", url)
    return url.split("?", 1)[0]


class Retryable(Exception):
    """Raised inside a call given to `retrying` when another try may help (429/5xx, a dropped connection)."""

    def __init__(self, why: str, retry_after: float | None = None):
        super().__init__(why)
        self.why = why
        self.retry_after = retry_after  # the server's Retry-After, in seconds


def retrying(call: Callable[[], T], label: str, retry: RetryPolicy = DEFAULT_RETRY) -> T:
    """`call()` until it returns, raises something other than Retryable, or `retry` is spent (then
    SourceError(rule="source.unreachable")). The one retry loop: requests here, huggingface_hub's client in hf.py.
    Hand-written rather than urllib3's Retry because it also has to drive huggingface_hub's httpx client and to
    bound the total time waited (Retry bounds tries and each wait, not their sum)."""
    start = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        interrupt.check()
        try:
            return call()
        except Retryable as exc:
            wait = retry.delay(attempt, exc.retry_after)
            elapsed = time.monotonic() - start
            if attempt >= retry.max_tries or elapsed + wait > retry.max_total:
                why = f"{exc.why} after {attempt} tries"
                if exc.retry_after is not None and elapsed + wait > retry.max_total:
                    why += f" (server asked to wait {exc.retry_after:.0f}s, over the {retry.max_total:.0f}s budget)"
                raise SourceError(f"{label}: {why}", rule="source.unreachable") from None
            _sleep(wait)


def request(
    method: str,
    url: str,
    *,
    session: requests.Session | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: Any = DEFAULT_TIMEOUT,
    retry: RetryPolicy = DEFAULT_RETRY,
    what: str | None = None,
    **kwargs: Any,
) -> requests.Response:
    """One HTTP call with a timeout and bounded retries. Returns the response for any status that is not retried
    (the caller judges 2xx/3xx/4xx); raises SourceError(rule="source.unreachable") once retries are exhausted."""
    use = session or get_session()
    label = what or f"{method} {redact(url)}"

    stream = bool(kwargs.pop("stream", False))

    def once() -> requests.Response:
        BREAKER.check(url)
        SENT.add()
        resp: requests.Response | None = None
        deadline = time.monotonic() + request_seconds()
        try:
            # Always streamed: a body the caller wants whole is read here within MAX_API_BYTES and the deadline.
            resp = use.request(method, url, headers=dict(headers or {}), timeout=timeout, stream=True, **kwargs)
            BREAKER.answered(url)
            if not stream and resp.status_code not in RETRY_STATUSES:
                try:
                    resp._content = read_body(resp, MAX_API_BYTES, label, deadline)
                    # read to its end: close() hands the connection back to the pool instead of closing it
                    resp._content_consumed = True  # type: ignore[attr-defined]  # requests sets it, untyped
                finally:
                    resp.close()
        except NETWORK_ERRORS as exc:
            if resp is None:
                BREAKER.failed(url, type(exc).__name__)  # no HTTP answer at all
            raise Retryable(type(exc).__name__) from None
        except requests.RequestException as exc:  # invalid URL, too many redirects …: retrying will not help
            raise SourceError(f"{label}: {type(exc).__name__}", rule="source.unreachable") from None
        if resp.status_code not in RETRY_STATUSES:
            return resp
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        resp.close()
        raise Retryable(f"HTTP {resp.status_code}", retry_after)

    return retrying(once, label, retry)


def status_error(resp: requests.Response | int, label: str) -> SourceError:
    """A SourceError for a non-success status (an answer or its code): 401/403 mean we could not verify, others that
    we could not read."""
    code = resp if isinstance(resp, int) else resp.status_code
    if code in (401, 403):
        return SourceError(
            f"{label}: HTTP {code} (private or gated; a token with access is needed)", rule="source.unverifiable"
        )
    if code == 404:
        return SourceError(f"{label}: not found (HTTP 404)", rule="source.not_found")
    return SourceError(f"{label}: HTTP {code}", rule="source.unreachable")


_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$")


def parse_content_range(value: str | None) -> tuple[int, int, int | None] | None:
    m = _CONTENT_RANGE.match(value or "")
    if not m:
        return None
    total = None if m.group(3) == "*" else int(m.group(3))
    return int(m.group(1)), int(m.group(2)), total


class HTTPRangeByteSource(ByteSource):
    """A remote file read by HTTP Range requests.

    Each read asks for `bytes=a-b` and insists on `206 Partial Content` with a matching `Content-Range`: a server
    that ignores Range (200 with the whole body) or answers another range raises SourceError instead of returning
    wrong bytes. A connection dropped mid-body resumes with a request for the remaining range.
    """

    CHUNK = 1 << 16
    MAX_RESUMES = 5
    # What a request costs beyond its bytes, in bytes (see coalesce): a round trip, weighed against the share of a
    # model a comparison promises to read (a few hundred rows, never whole tensors) ...
    request_cost = 4 * 1024
    # ... and, for the screens `watch` and `sweep` run on every same-width repo, against the Hub's rate limit:
    # there a request is worth a megabyte, so a small model's 128 sampled rows come in one request per matrix.
    screen_request_cost = 1024 * 1024

    def __init__(
        self,
        url: str,
        size: int,
        name: str | None = None,
        headers: Mapping[str, str] | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        timeout: Any = DEFAULT_TIMEOUT,
        check: Callable[[Answer], None] | None = None,
    ):
        super().__init__(name or redact(url), size)
        self.url = url
        self._check = check  # the source's own test of each answer (the Hub: served from the listed commit)
        self._headers = dict(headers or {})
        self._retry = retry
        self._timeout = timeout
        self.requests = 0  # HTTP range requests made, resumes included
        self.resumes = 0
        # Where the file's redirects led (the Hub sends every download to a CDN, by a signed URL valid for an hour
        # or so) and the redirects' answers: later ranges go there directly, one request each instead of two and
        # none to the Hub's download endpoint; an answer there other than 206 (expired, moved) sends the read back
        # through the redirects once.
        self._redirected: tuple[Hop, tuple[Answer, ...]] | None = None

    def __repr__(self) -> str:  # never shows headers (they may hold a token)
        return f"HTTPRangeByteSource({self.name!r}, size={self.size})"

    def _read(self, offset: int, length: int) -> bytes:
        buf = bytearray()
        end = offset + length - 1
        resumes = 0
        while len(buf) < length:
            start = offset + len(buf)
            before = len(buf)
            try:
                self._fetch(start, end, buf)
            except NETWORK_ERRORS + (requests.exceptions.ContentDecodingError,) as exc:
                if len(buf) - before < min(self.CHUNK, length - before):
                    # Less than a chunk before the drop counts against the budget: reads now return what arrived,
                    # and a server dropping every answer a few bytes in must not get a request per byte.
                    resumes += 1
                if resumes > self.MAX_RESUMES:
                    raise SourceError(
                        f"{self.name}: connection kept failing reading bytes {start}-{end} ({type(exc).__name__})",
                        rule="source.unreachable",
                    ) from None
                self.resumes += 1
                continue
        return bytes(buf)

    def _fetch(self, start: int, end: int, buf: bytearray) -> None:
        headers = dict(self._headers)
        headers["Range"] = f"bytes={start}-{end}"
        headers["Accept-Encoding"] = "identity"  # a compressed body would not match the byte range
        self.requests += 1
        deadline = time.monotonic() + request_seconds()
        label = f"{self.name}: range {start}-{end}"
        redirected = self._redirected
        if redirected is not None:
            hop, history = redirected
            again = {**hop.headers, "Range": headers["Range"]}
            resp, _, _ = range_get(hop.url, again, self._timeout, self._retry, label)
            if resp.status == 206:
                return self._consume(resp, Answer(resp.status, resp.headers, history), start, end, buf, deadline)
            discard(resp)
            self._redirected = None
            self.requests += 1
        resp, answer, hop = range_get(self.url, headers, self._timeout, self._retry, label)
        self._consume(resp, answer, start, end, buf, deadline)
        if answer.history:
            self._redirected = hop, answer.history

    def _consume(
        self, resp: urllib3.BaseHTTPResponse, answer: Answer, start: int, end: int, buf: bytearray, deadline: float
    ) -> None:
        try:
            self._take(resp, answer, start, end, buf, f"{self.name}: range {start}-{end}", deadline)
        except BaseException:
            resp.close()  # an answer not read to its end leaves its connection unusable
            raise
        finally:
            resp.release_conn()

    def _take(
        self,
        resp: urllib3.BaseHTTPResponse,
        answer: Answer,
        start: int,
        end: int,
        buf: bytearray,
        label: str,
        deadline: float,
    ) -> None:
        """Checks a range answer and appends its body to `buf`; a body that ends early raises a network error."""
        if resp.status == 200:
            raise SourceError(
                f"{self.name}: server ignored the Range header (HTTP 200 with the whole file "
                "instead of 206); refusing to read a whole weight file",
                rule="source.malformed",
            )
        if resp.status != 206:
            raise status_error(resp.status, f"{self.name}: range {start}-{end}")
        if self._check is not None:
            self._check(answer)
        got = parse_content_range(resp.headers.get("Content-Range"))
        if got is None:
            raise SourceError(
                f"{self.name}: 206 without a valid Content-Range ({resp.headers.get('Content-Range')!r})",
                rule="source.malformed",
            )
        if resp.headers.get("Content-Encoding", "identity").strip().lower() != "identity":
            raise SourceError(
                f"{self.name}: range answered with Content-Encoding {resp.headers['Content-Encoding'][:40]!r} "
                "although identity was asked for",
                rule="source.malformed",
            )
        a, b, total = got
        if a != start or b < a or b > end or (total is not None and total != self.size):
            raise SourceError(
                f"{self.name}: asked for bytes {start}-{end}/{self.size}, server answered "
                f"Content-Range {resp.headers.get('Content-Range')!r}",
                rule="source.malformed",
            )
        want = b - a + 1
        got_bytes = 0
        for chunk in body_chunks(resp, label, deadline, self.CHUNK):
            take = min(len(chunk), want - got_bytes)
            buf += chunk if take == len(chunk) else chunk[:take]
            got_bytes += take
            if len(chunk) > take:
                raise SourceError(
                    f"{self.name}: server sent more than the {want} bytes of its Content-Range",
                    rule="source.malformed",
                )
        if got_bytes < want:
            # Body ended early without an exception (e.g. Content-Length not enforced): resume.
            raise requests.exceptions.ChunkedEncodingError("body ended early")
