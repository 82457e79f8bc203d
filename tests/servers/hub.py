"""A local Hugging Face Hub: the part of the Hub API that the unmodified `huggingface_hub` client calls.

Serves repos from a folder, one subfolder per repo (`ROOT/ORG/NAME/…`). An optional `ROOT/ORG/NAME.hub.json` sets
`{"gated": "manual"}` or `{"private": true}`. Weight files are LFS files (siblings carry `lfs.sha256`); the commit
sha is derived from the content, so editing a file changes the revision.

Endpoints: GET /api/models/{repo}[/revision/{rev}] (blobs=True, expand=…), GET /api/models?author=… (paginated with
Link), GET /api/models/{repo}/tree/{rev}[/{path}], GET|HEAD /{repo}/resolve/{rev}/{path} (Range, ETag,
X-Repo-Commit, X-Linked-Size, X-Linked-Etag). Dataset repos live in a folder of their own (`ROOT-datasets/ORG/NAME`,
written with `make_dataset`): GET /api/datasets/{repo}[/revision/{rev}] (with `cardData`, the README's front matter
as the Hub parses it) and GET|HEAD /datasets/{repo}/resolve/{rev}/{path}. Faults are injected with `server.fault(...)`; requests and bytes served
are counted.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".h5", ".msgpack", ".onnx", ".npz")
LFS_MIN = 10 * 1024 * 1024


@dataclass
class Fault:
    kind: str  # "429" | "500" | "reset" | "ignore_range" | "wrong_range" | "slow" | "ratelimit"
    match: str = ""  # substring of the request path
    times: int = 1  # how many matching requests it hits (-1: all)
    method: str | None = None
    retry_after: int | None = 1
    delay: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.connections = 0  # TCP connections accepted
        self.log: list[tuple[str, str, int]] = []  # (method, path, status)
        self.ranges: list[str | None] = []  # the Range header of each request in `log`, in the same order
        self.bytes_served = 0  # bodies of resolve/raw downloads
        self.weight_bytes_served = 0

    def add(self, method: str, path: str, status: int, rng: str | None = None) -> None:
        with self.lock:
            self.requests += 1
            self.log.append((method, path, status))
            self.ranges.append(rng)

    def connected(self) -> None:
        with self.lock:
            self.connections += 1

    def served(self, path: str, n: int, weight: bool) -> None:
        with self.lock:
            self.bytes_served += n
            if weight:
                self.weight_bytes_served += n

    def paths(self, method: str | None = None) -> list[str]:
        return [p for m, p, _ in self.log if method is None or m == method]


class _QuietHTTPServer(ThreadingHTTPServer):
    """Clients that hang up mid-request (the reset faults do it on purpose) are not errors worth a traceback."""

    def handle_error(self, request, client_address) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class BaseServer:
    """Common machinery: a ThreadingHTTPServer on 127.0.0.1:0 with faults and counters."""

    handler_cls: type[BaseHTTPRequestHandler]

    def __init__(self) -> None:
        self.stats = Stats()
        self.faults: list[Fault] = []
        self._flock = threading.Lock()
        self.httpd: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> BaseServer:
        owner = self

        class Handler(self.handler_cls):  # type: ignore[misc,valid-type]
            server_obj = owner

        self.httpd = _QuietHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    def __enter__(self) -> BaseServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self.httpd is not None
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def fault(self, kind: str, match: str = "", times: int = 1, **kw: Any) -> Fault:
        f = Fault(kind, match, times, **kw)
        with self._flock:
            self.faults.append(f)
        return f

    def clear_faults(self) -> None:
        with self._flock:
            self.faults.clear()

    def take_fault(self, method: str, path: str, kinds: tuple[str, ...] | None = None) -> Fault | None:
        with self._flock:
            for f in self.faults:
                if f.times == 0 or (kinds and f.kind not in kinds):
                    continue
                if f.match in path and (f.method is None or f.method == method):
                    if f.times > 0:
                        f.times -= 1
                    return f
        return None


class BaseHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: with Nagle's algorithm on, the body waits for the client's
    # delayed ACK (~40 ms a response), which made every benchmark mostly that stall.
    disable_nagle_algorithm = True
    server_obj: BaseServer

    def setup(self) -> None:
        super().setup()
        self.server_obj.stats.connected()

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # -- helpers ----------------------------------------------------------------------------------------------------
    def _send(
        self,
        status: int,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        # Counted before the answer goes out, so a client that has its answer always sees the count.
        self.server_obj.stats.add(self.command, self.path, status, self.headers.get("Range"))
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _json(self, status: int, value: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(value).encode(), headers)

    def _error(
        self, status: int, code: str | None = None, message: str = "error", headers: dict[str, str] | None = None
    ) -> None:
        h = dict(headers or {})
        if code:
            h["X-Error-Code"] = code
        h["X-Error-Message"] = message
        self._json(status, {"error": message}, h)

    def _pre_faults(self) -> bool:
        """Faults that replace the whole answer. True when one was served."""
        f = self.server_obj.take_fault(self.command, self.path, ("429", "500", "slow", "ratelimit"))
        if f is None:
            return False
        if f.kind == "slow":
            time.sleep(f.delay)
            return False
        if f.kind == "429":
            h = {"Retry-After": str(f.retry_after)} if f.retry_after is not None else {}
            self._error(429, None, "Too Many Requests", h)
        elif f.kind == "500":
            self._error(500, None, "Internal Server Error")
        elif f.kind == "ratelimit":
            reset = int(time.time() + f.extra.get("reset_in", 1))
            self._json(
                403,
                {"message": "API rate limit exceeded"},
                {"X-RateLimit-Remaining": "0", "X-RateLimit-Limit": "60", "X-RateLimit-Reset": str(reset)},
            )
        return True

    def _auth_token(self) -> str | None:
        h = self.headers.get("Authorization", "")
        if h.lower().startswith("bearer "):
            return h[7:].strip()
        return None

    def _serve_bytes(self, data: bytes, headers: dict[str, str], weight: bool) -> None:
        """GET/HEAD with Range, and the body faults: reset mid-body, Range ignored, wrong Content-Range."""
        size = len(data)
        rng = self.headers.get("Range")
        fault = None
        if self.command == "GET":
            fault = self.server_obj.take_fault("GET", self.path, ("reset", "ignore_range", "wrong_range"))
        status, start, end = 200, 0, size - 1
        if rng and (fault is None or fault.kind != "ignore_range"):
            m = re.match(r"bytes=(\d*)-(\d*)$", rng.strip())
            if not m:
                return self._error(416, None, "bad range", {"Content-Range": f"bytes */{size}"})
            if m.group(1):
                start = int(m.group(1))
                end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            else:
                start, end = max(0, size - int(m.group(2))), size - 1
            if start >= size or start > end:
                return self._error(416, None, "range not satisfiable", {"Content-Range": f"bytes */{size}"})
            status = 206
        body = data[start : end + 1]
        h = dict(headers)
        h["Accept-Ranges"] = "bytes"
        if status == 206:
            a, b = start, end
            if fault is not None and fault.kind == "wrong_range":
                a, b = start + 1, end + 1
            h["Content-Range"] = f"bytes {a}-{b}/{size}"
        if self.command == "HEAD":
            return self._send(status, body, h, "application/octet-stream")
        if fault is not None and fault.kind == "reset" and len(body) > 1:
            half = len(body) // 2
            self.server_obj.stats.add(self.command, self.path, status, self.headers.get("Range"))
            self.server_obj.stats.served(self.path, half, weight)
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            for k, v in h.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[:half])
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return None
        self.server_obj.stats.served(self.path, len(body), weight)
        self._send(status, body, h, "application/octet-stream")
        return None


# -- the Hub --------------------------------------------------------------------------------------------------------
def _file_bytes(path: Path):
    """The file's bytes as a read-only map (slices read only what they touch); empty files as b''."""
    import mmap

    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            return b""
        return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)


class Repo:
    def __init__(self, root: Path, repo_id: str, kind: str = "model"):
        self.id = repo_id
        self.kind = kind
        self.dir = root / repo_id
        cfg = root / f"{repo_id}.hub.json"
        self.cfg: dict[str, Any] = json.loads(cfg.read_text()) if cfg.exists() else {}

    @property
    def gated(self) -> Any:
        return self.cfg.get("gated", False)

    @property
    def private(self) -> bool:
        return bool(self.cfg.get("private", False))


class HubServer(BaseServer):
    """`HubServer(root, tokens={"hf_ok"})`: repos under root; tokens that may read gated/private repos."""

    # The Hub's model listing is paged, the next page named by `Link: <…>; rel="next"` (huggingface/hub-docs
    # docs/hub/api.md @0011475e, "GET /api/models"; huggingface_hub's utils/_pagination.py follows it); `limit` is
    # the page size, the next link carrying on past it (huggingface/huggingface.js packages/hub/src/lib/list-models.ts
    # @02bbeee5 asks limit=500 a page and follows the links), at most 1000 a page as observed
    # (https://www.browse.sh/skills/huggingface.co/browse-latest-models-brgzzx: "limit is per-page; observed max is
    # 1000 per request"). The page size without `limit` is not documented: PAGE here, small so that tests of a
    # client that names no limit see several pages.
    PAGE = 50
    MAX_PAGE = 1000
    # True: a model's LFS file is not served by its resolve URL but redirected (302, with the Hub's X-Repo-Commit,
    # X-Linked-Size and X-Linked-Etag on the redirect) to /cdn/…, which serves the bytes, as the Hub sends LFS
    # downloads to its CDN: a client then pays one Hub request per file and reads from the CDN.
    cdn = False

    def __init__(self, root: str | os.PathLike[str], tokens: set[str] | None = None):
        super().__init__()
        self.root = Path(root)
        self.datasets_root = datasets_root(self.root)
        self.tokens = set(tokens or ())
        self._hash_cache: dict[tuple[str, int, int], tuple[str, str]] = {}
        self._hlock = threading.Lock()
        self.handler_cls = HubHandler

    # -- repo facts -------------------------------------------------------------------------------------------------
    def repo(self, repo_id: str, kind: str = "model") -> Repo | None:
        if ".." in repo_id.split("/") or repo_id.count("/") != 1:
            return None
        r = Repo(self.datasets_root if kind == "dataset" else self.root, repo_id, kind)
        return r if r.dir.is_dir() else None

    def repo_ids(self) -> list[str]:
        out = []
        for org in sorted(p for p in self.root.iterdir() if p.is_dir()):
            out += [f"{org.name}/{d.name}" for d in sorted(org.iterdir()) if d.is_dir()]
        return out

    def files(self, repo: Repo) -> list[str]:
        return sorted(p.relative_to(repo.dir).as_posix() for p in repo.dir.rglob("*") if p.is_file())

    def hashes(self, path: Path) -> tuple[str, str]:
        """(sha256, git blob sha1) of a file, memoised by (path, size, mtime)."""
        st = path.stat()
        key = (str(path), st.st_size, st.st_mtime_ns)
        with self._hlock:
            if key in self._hash_cache:
                return self._hash_cache[key]
        data = path.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        with self._hlock:
            self._hash_cache[key] = (sha, blob)
        return sha, blob

    @staticmethod
    def is_lfs(path: str, size: int) -> bool:
        return path.lower().endswith(WEIGHT_SUFFIXES) or size >= LFS_MIN

    def commit(self, repo: Repo) -> str:
        h = hashlib.sha1()
        for f in self.files(repo):
            h.update(f.encode() + b"\0" + self.hashes(repo.dir / f)[0].encode() + b"\n")
        return h.hexdigest()

    def sibling(self, repo: Repo, f: str) -> dict[str, Any]:
        p = repo.dir / f
        size = p.stat().st_size
        sha, blob = self.hashes(p)
        out: dict[str, Any] = {"rfilename": f, "size": size, "blobId": blob}
        if self.is_lfs(f, size):
            out["lfs"] = {"size": size, "sha256": sha, "pointerSize": 134}
        return out

    def info(self, repo: Repo, blobs: bool, expand: list[str] | None) -> dict[str, Any]:
        sha = self.commit(repo)
        full: dict[str, Any] = {
            "_id": hashlib.md5(repo.id.encode()).hexdigest()[:24],
            "id": repo.id,
            "modelId": repo.id,
            "author": repo.id.split("/")[0],
            "sha": sha,
            "private": repo.private,
            "gated": repo.gated,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": ["safetensors"],
            "library_name": "transformers",
            "lastModified": "2024-06-01T00:00:00.000Z",
            "createdAt": "2024-06-01T00:00:00.000Z",
        }
        if expand:
            keep = {"_id", "id"} | set(expand)
            return {k: v for k, v in full.items() if k in keep}
        files = self.files(repo)
        full["siblings"] = [self.sibling(repo, f) if blobs else {"rfilename": f} for f in files]
        return full


class HubHandler(BaseHandler):
    server_obj: HubServer

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        if self._pre_faults():
            return None
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        q = parse_qs(parts.query)
        if path == "/api/models":
            return self._list(q)
        m = re.match(r"^/api/models/([^/]+/[^/]+)/tree/([^/]+)(?:/(.*))?$", path)
        if m:
            return self._tree(m.group(1), m.group(2), m.group(3) or "", q)
        m = re.match(r"^/api/models/([^/]+/[^/]+)(?:/revision/(.+))?$", path)
        if m:
            return self._model(m.group(1), m.group(2), q)
        m = re.match(r"^/api/datasets/([^/]+/[^/]+)(?:/revision/(.+))?$", path)
        if m:
            return self._dataset(m.group(1), m.group(2), q)
        m = re.match(r"^/datasets/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
        if m:
            return self._resolve(m.group(1), m.group(2), m.group(3), kind="dataset")
        m = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
        if m:
            return self._resolve(m.group(1), m.group(2), m.group(3))
        m = re.match(r"^/cdn/([^/]+/[^/]+)/([0-9a-f]{64})/(.+)$", path)
        if m:
            return self._cdn(m.group(1), m.group(2), m.group(3))
        return self._error(404, None, "no such endpoint")

    def _authorized(self, repo: Repo) -> bool:
        return self._auth_token() in self.server_obj.tokens

    def _visible(self, repo_id: str, kind: str = "model") -> Repo | None:
        repo = self.server_obj.repo(repo_id, kind)
        if repo is None:
            self._error(404, "RepoNotFound", "Repository not found")
            return None
        if repo.private and not self._authorized(repo):
            self._error(401, "RepoNotFound", "Repository not found")
            return None
        return repo

    def _check_rev(self, repo: Repo, rev: str | None) -> str | None:
        sha = self.server_obj.commit(repo)
        if rev in (None, "main", sha):
            return sha
        self._error(404, "RevisionNotFound", "Invalid rev id")
        return None

    def _model(self, repo_id: str, rev: str | None, q: dict[str, list[str]]) -> None:
        repo = self._visible(repo_id)
        if repo is None:
            return
        if self._check_rev(repo, rev) is None:
            return
        blobs = q.get("blobs", ["false"])[0].lower() == "true"
        self._json(200, self.server_obj.info(repo, blobs, q.get("expand")))

    def _dataset(self, repo_id: str, rev: str | None, q: dict[str, list[str]]) -> None:
        """A dataset's info, as the Hub gives it to anyone: a gated dataset's card data included."""
        repo = self._visible(repo_id, "dataset")
        if repo is None or self._check_rev(repo, rev) is None:
            return
        info = self.server_obj.info(repo, False, q.get("expand"))
        if not q.get("expand"):
            info.pop("modelId", None)
            info.pop("library_name", None)
            info["tags"] = []
            readme = repo.dir / "README.md"
            card = _front_matter(readme.read_text(encoding="utf-8")) if readme.is_file() else None
            if card is not None:
                info["cardData"] = card
        self._json(200, info)

    def _tree(self, repo_id: str, rev: str, sub: str, q: dict[str, list[str]]) -> None:
        repo = self._visible(repo_id)
        if repo is None or self._check_rev(repo, rev) is None:
            return
        srv = self.server_obj
        out = []
        for f in srv.files(repo):
            if sub and not f.startswith(sub.rstrip("/") + "/"):
                continue
            s = srv.sibling(repo, f)
            entry: dict[str, Any] = {"type": "file", "oid": s["blobId"], "size": s["size"], "path": f}
            if "lfs" in s:
                entry["lfs"] = {"oid": s["lfs"]["sha256"], "size": s["size"], "pointerSize": 134}
            out.append(entry)
        self._json(200, out)

    def _list(self, q: dict[str, list[str]]) -> None:
        author = q.get("author", [None])[0]
        ids = [r for r in self.server_obj.repo_ids() if author is None or r.split("/")[0] == author]
        ids = [r for r in ids if not self.server_obj.repo(r).private or self._auth_token() in self.server_obj.tokens]
        start = int(q.get("cursor", ["0"])[0] or 0)
        asked = q.get("limit", [""])[0]
        expand = q.get("expand", [])
        size = min(int(asked), self.server_obj.MAX_PAGE) if asked.isdigit() and int(asked) > 0 else self.server_obj.PAGE
        page = ids[start : start + size]
        headers = {}
        if start + size < len(ids):
            nxt = f"{self.server_obj.url}/api/models?cursor={start + size}"
            if asked:
                nxt += f"&limit={quote(asked)}"
            if author:
                nxt += f"&author={quote(author)}"
            nxt += "".join(f"&expand={quote(e)}" for e in expand)
            headers["Link"] = f'<{nxt}>; rel="next"'
        if expand:  # as the Hub: `_id`, `id` and the fields asked for (`sha`: the main branch's commit)
            srv = self.server_obj
            return self._json(200, [srv.info(srv.repo(r), False, expand) for r in page], headers)
        self._json(
            200,
            [
                {
                    "_id": hashlib.md5(r.encode()).hexdigest()[:24],
                    "id": r,
                    "modelId": r,
                    "private": False,
                    "tags": [],
                    "likes": 0,
                    "downloads": 0,
                }
                for r in page
            ],
            headers,
        )

    def _resolve(self, repo_id: str, rev: str, f: str, kind: str = "model") -> None:
        repo = self._visible(repo_id, kind)
        if repo is None:
            return
        if repo.gated and not self._authorized(repo):
            return self._error(
                401 if self._auth_token() is None else 403,
                "GatedRepo",
                "Access to model is restricted. You must have access to it and be authenticated.",
            )
        sha = self._check_rev(repo, rev)
        if sha is None:
            return
        p = repo.dir / f
        if ".." in f.split("/") or not p.is_file():
            return self._error(404, "EntryNotFound", "Entry not found")
        data = _file_bytes(p)  # mapped, not read: a range request must not cost a whole-file read
        file_sha, blob = self.server_obj.hashes(p)
        headers = {"X-Repo-Commit": sha, "ETag": f'"{blob}"'}
        lfs = HubServer.is_lfs(f, len(data))
        if lfs:
            headers["X-Linked-Size"] = str(len(data))
            headers["X-Linked-Etag"] = f'"{file_sha}"'
            headers["ETag"] = f'"{file_sha}"'
            if self.server_obj.cdn and kind == "model":
                headers["Location"] = f"{self.server_obj.url}/cdn/{repo_id}/{file_sha}/{quote(f)}"
                return self._send(302, b"", headers)
        self._serve_bytes(data, headers, weight=f.lower().endswith(WEIGHT_SUFFIXES))

    def _cdn(self, repo_id: str, file_sha: str, f: str) -> None:
        """The CDN's answer to a redirect of _resolve's: the file's bytes while its content is the one named."""
        repo = self.server_obj.repo(repo_id)
        p = repo.dir / f if repo is not None else None
        if p is None or ".." in f.split("/") or not p.is_file() or self.server_obj.hashes(p)[0] != file_sha:
            return self._error(404, None, "no such object")
        self._serve_bytes(_file_bytes(p), {"ETag": f'"{file_sha}"'}, weight=f.lower().endswith(WEIGHT_SUFFIXES))


def datasets_root(root: Path) -> Path:
    """Where a Hub rooted at `root` keeps its dataset repos."""
    return root.with_name(root.name + "-datasets")


def _front_matter(text: str) -> dict[str, Any] | None:
    import yaml

    m = re.match(r"^---\n(.*?)\n---\s*\n", text, re.S)
    try:
        data = yaml.safe_load(m.group(1)) if m else None
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def make_dataset(root: str | os.PathLike[str], repo_id: str, files: dict[str, bytes | str], **cfg: Any) -> Path:
    """Write a dataset repo of the Hub rooted at `root` (and its `.hub.json` when `cfg` is given)."""
    return make_repo(datasets_root(Path(root)), repo_id, files, **cfg)


def make_repo(root: str | os.PathLike[str], repo_id: str, files: dict[str, bytes | str], **cfg: Any) -> Path:
    """Write a repo folder (and its `.hub.json` when `cfg` is given)."""
    d = Path(root) / repo_id
    d.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content.encode() if isinstance(content, str) else content)
    if cfg:
        (Path(root) / f"{repo_id}.hub.json").write_text(json.dumps(cfg))
    return d
