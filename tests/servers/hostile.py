"""The local Hub and GitHub servers playing hostile repos, and a foreign host that records what it is sent.

`HostileHub(root, tokens)` serves the repos under `root` like `HubServer`, except those of the `hostile`
organisation, whose name picks a behaviour (`hostile/endless_json` drips config.json forever, …; see MODES).
`HostileGitHub` does the same for GitHub (`hostile/<mode>`). Each starts a foreign host beside it (`.foreign`: the
same repos, reached under another host name, `localhost` where the others are `127.0.0.1`): the redirect cases send
clients there, and it records every request's headers so a test can assert that no token ever arrived.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
import time
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from .github import GitHubHandler, GitHubServer
from .hub import HubHandler, HubServer

DRIP_PAUSE = 0.5  # seconds between the bytes of a body that never ends: no read timeout ever fires
LISTING_SIZE = 200_000
OTHER_COMMIT = "0" * 40

HUB_MODES = (
    "lfs_size_lies_big",  # the listing says 5 GiB, the file has a few hundred KB
    "lfs_size_lies_small",  # the listing says half the real size
    "range_more_bytes",  # 206 with the asked Content-Range and 100 bytes more in the body
    "range_wrong_content_range",  # 206 whose Content-Range is off by one
    "range_ignored",  # 200 with the whole file
    "range_gzip",  # 206 gzip-encoded (a bomb) although identity was asked for
    "endless_weights",  # a range answer that never ends
    "endless_json",  # config.json never ends
    "endless_listing",  # the API's file listing never ends
    "gzip_bomb_json",  # config.json as 256 MiB of gzip-compressed zeros
    "gzip_bomb_listing",  # the API's answer as 256 MiB of gzip-compressed spaces
    "listing_200k",  # 200 000 files listed
    "redirect_foreign",  # every file download redirected to another host
    "redirect_foreign_api",  # the API answer redirected to another host
    "changes_after_listing",  # files served from another commit than the listed one
    "header_gigabytes_safetensors",  # safetensors header length of 3 GiB in a sparse 4 GiB file
    "header_gigabytes_gguf",  # GGUF string of 3 GiB in a sparse 4 GiB file
    "pickle_payload",  # a .bin pickle whose loading would run a command
)
GITHUB_MODES = (
    "download_url_foreign",  # the contents API points download_url at another host
    "raw_redirect_foreign",  # the raw download redirects to another host
    "lfs_pointer_lies",  # the LFS pointer in git says 10 GiB
    "endless_raw",  # the raw download never ends
    "api_endless",  # the repo metadata answer never ends
    "api_gzip_bomb",  # the repo metadata answer is a gzip bomb
)


@cache
def gzip_bomb(n: int = 256 * 1024 * 1024, fill: bytes = b"\0") -> bytes:
    """`n` bytes of `fill`, gzip-compressed (about n/1000 bytes). Made before the servers answer anything (see
    `prepare`): a client must not see the time it takes as a slow server."""
    block = fill * (1 << 20)
    z = gzip.GzipFile(fileobj=(out := _Buffer()), mode="wb", compresslevel=6)
    for _ in range(n // len(block)):
        z.write(block)
    z.close()
    return out.getvalue()


def prepare() -> None:
    gzip_bomb()
    gzip_bomb(fill=b" ")


class _Buffer:
    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, b: bytes) -> int:
        self.parts.append(bytes(b))
        return len(b)

    def flush(self) -> None:
        pass

    def getvalue(self) -> bytes:
        return b"".join(self.parts)


class Recorder:
    """Every request's method, path and headers, thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str, dict[str, str]]] = []

    def add(self, method: str, path: str, headers: dict[str, str]) -> None:
        with self.lock:
            self.requests.append((method, path, headers))

    def carrying(self, secret: str) -> list[str]:
        """Requests that carried `secret` in any header (name or value) or in the path."""
        with self.lock:
            return [
                f"{m} {p}"
                for m, p, h in self.requests
                if secret in p or any(secret in k or secret in v for k, v in h.items())
            ]


def _drip(handler: Any, status: int, headers: dict[str, str], length: int, head: bytes = b"") -> None:
    """Answer `status` with a Content-Length of `length`, then send `head` and one byte every DRIP_PAUSE seconds
    until the client hangs up."""
    handler.server_obj.stats.add(handler.command, handler.path, status)
    handler.send_response(status)
    for k, v in headers.items():
        handler.send_header(k, v)
    handler.send_header("Content-Length", str(length))
    handler.end_headers()
    handler.close_connection = True
    try:
        handler.wfile.write(head)
        handler.wfile.flush()
        while not handler.server_obj.stopping.is_set():
            handler.wfile.write(b" ")
            handler.wfile.flush()
            time.sleep(DRIP_PAUSE)
    except OSError:
        pass


def _asked_range(value: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a `bytes=a-b` Range header, or None."""
    start, sep, end = (value or "").strip().removeprefix("bytes=").partition("-")
    if not (sep and start.isdigit() and (end.isdigit() or not end)) or int(start) >= size:
        return None
    return int(start), min(int(end), size - 1) if end else size - 1


# -- the Hub ---------------------------------------------------------------------------------------------------------
class ForeignHost(HubServer):
    """Another host serving the same repos, recording what it is sent."""

    def __init__(self, root: str | Path):
        super().__init__(root)
        self.recorder = Recorder()
        self.stopping = threading.Event()
        self.handler_cls = RecordingHubHandler

    @property
    def url(self) -> str:
        return super().url.replace("127.0.0.1", "localhost")


class RecordingHubHandler(HubHandler):
    def do_GET(self) -> None:
        self.server_obj.recorder.add(self.command, self.path, dict(self.headers.items()))  # type: ignore[attr-defined]
        super().do_GET()


class HostileHub(HubServer):
    def __init__(self, root: str | Path, tokens: set[str] | None = None):
        super().__init__(root, tokens)
        self.foreign = ForeignHost(root)
        self.recorder = Recorder()
        self.stopping = threading.Event()
        self.listed: set[str] = set()  # repos whose full listing was served (changes_after_listing)
        self.handler_cls = HostileHubHandler
        self.fault("wrong_range", match="/hostile/range_wrong_content_range/", times=-1)
        self.fault("ignore_range", match="/hostile/range_ignored/", times=-1)

    def start(self) -> HostileHub:
        prepare()
        super().start()
        self.foreign.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.foreign.stop()
        super().stop()

    def hashes(self, path: Path) -> tuple[str, str]:
        """Sparse multi-GiB files are hashed by their first MiB and size (reading 4 GiB per listing would be the
        test's cost, not the scanner's; the listing's hash is never checked against a file this size)."""
        size = path.stat().st_size
        if size < 1 << 30:
            return super().hashes(path)
        with open(path, "rb") as fh:
            head = fh.read(1 << 20)
        sha = hashlib.sha256(head + str(size).encode()).hexdigest()
        return sha, hashlib.sha1(sha.encode()).hexdigest()

    def info(self, repo: Any, blobs: bool, expand: list[str] | None) -> dict[str, Any]:
        out = super().info(repo, blobs, expand)
        mode = mode_of(repo.id)
        if blobs:
            self.listed.add(repo.id)
        for s in out.get("siblings", []):
            if "lfs" in s and mode == "lfs_size_lies_big":
                s["lfs"]["size"] = s["size"] = 5 << 30
            elif "lfs" in s and mode == "lfs_size_lies_small":
                s["lfs"]["size"] = s["size"] = s["size"] // 2
        if mode == "listing_200k" and "siblings" in out:
            out["siblings"] += [
                {"rfilename": f"data/part-{i:06d}.parquet", "size": 1000 + i, "blobId": f"{i:040x}"}
                for i in range(LISTING_SIZE)
            ]
        return out


def mode_of(repo_id: str) -> str | None:
    org, _, name = repo_id.partition("/")
    return name if org == "hostile" else None


class HostileHubHandler(HubHandler):
    server_obj: HostileHub

    def _mode(self) -> str | None:
        parts = unquote(urlsplit(self.path).path).strip("/").split("/")
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            return mode_of(f"{parts[2]}/{parts[3]}")
        return mode_of("/".join(parts[:2])) if len(parts) >= 2 else None

    def do_GET(self) -> None:
        self.server_obj.recorder.add(self.command, self.path, dict(self.headers.items()))
        mode = self._mode()
        api = self.path.startswith("/api/models/")
        if api and mode == "endless_listing":
            return _drip(self, 200, {"Content-Type": "application/json"}, 1 << 30, b'{"id": "hostile/x", "siblings": [')
        if api and mode == "gzip_bomb_listing":
            self.server_obj.stats.add(self.command, self.path, 200)
            return self._raw_send(200, gzip_bomb(fill=b" "), {"Content-Encoding": "gzip"})
        if api and mode == "redirect_foreign_api":
            return self._redirect()
        if not api and mode == "redirect_foreign" and "/resolve/" in self.path:
            return self._redirect()
        return super().do_GET()

    def _redirect(self) -> None:
        self.server_obj.stats.add(self.command, self.path, 302)
        self._raw_send(302, b"", {"Location": self.server_obj.foreign.url + self.path})

    def _raw_send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _serve_bytes(self, data: Any, headers: dict[str, str], weight: bool) -> None:
        mode = self._mode()
        rng = self.headers.get("Range")
        path = unquote(urlsplit(self.path).path)
        if mode == "changes_after_listing" and self.server_obj.listed:
            headers = dict(headers, **{"X-Repo-Commit": OTHER_COMMIT})  # a server that ignores the pinned revision
            if path.endswith("config.json"):
                data = json.dumps({"model_type": "changed", "hidden_size": 8}).encode()
        if mode == "endless_json" and path.endswith("config.json"):
            return _drip(self, 200, headers, 1 << 30, b'{"hidden_size": ')
        if mode == "gzip_bomb_json" and path.endswith("config.json"):
            self.server_obj.stats.add(self.command, self.path, 200)
            return self._raw_send(200, gzip_bomb(), dict(headers, **{"Content-Encoding": "gzip"}))
        asked = _asked_range(rng, len(data))
        if weight and asked and self.command == "GET" and mode in ("endless_weights", "range_more_bytes", "range_gzip"):
            a, b = asked
            h = dict(headers, **{"Content-Range": f"bytes {a}-{b}/{len(data)}"})
            if mode == "endless_weights":
                return _drip(self, 206, h, b - a + 1)
            self.server_obj.stats.add(self.command, self.path, 206)
            if mode == "range_gzip":
                return self._raw_send(206, gzip_bomb(), dict(h, **{"Content-Encoding": "gzip"}))
            return self._raw_send(206, bytes(data[a : b + 1]) + b"\xff" * 100, h)
        return super()._serve_bytes(data, headers, weight)


# -- GitHub ----------------------------------------------------------------------------------------------------------
class ForeignGitHub(GitHubServer):
    """Another host serving the raw files of `origin`'s repos, recording what it is sent."""

    def __init__(self, origin: GitHubServer):
        super().__init__(origin.root)
        self.repos, self.lfs = origin.repos, origin.lfs  # the same repos, shared
        self.recorder = Recorder()
        self.handler_cls = RecordingGitHubHandler

    @property
    def url(self) -> str:
        return super().url.replace("127.0.0.1", "localhost")


class RecordingGitHubHandler(GitHubHandler):
    def do_GET(self) -> None:
        self.server_obj.recorder.add(self.command, self.path, dict(self.headers.items()))  # type: ignore[attr-defined]
        super().do_GET()


class HostileGitHub(GitHubServer):
    def __init__(self, root: str | Path, tokens: set[str] | None = None):
        super().__init__(root, tokens)
        self.foreign = ForeignGitHub(self)
        self.recorder = Recorder()
        self.stopping = threading.Event()
        self.handler_cls = HostileGitHubHandler

    def start(self) -> HostileGitHub:
        prepare()
        super().start()
        self.foreign.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.foreign.stop()
        super().stop()


class HostileGitHubHandler(GitHubHandler):
    server_obj: HostileGitHub

    def _mode(self) -> str | None:
        parts = unquote(urlsplit(self.path).path).strip("/").split("/")
        if parts[:1] in (["repos"], ["raw"]) and len(parts) >= 3:
            return mode_of(f"{parts[1]}/{parts[2]}")
        return None

    def do_GET(self) -> None:
        self.server_obj.recorder.add(self.command, self.path, dict(self.headers.items()))
        mode = self._mode()
        path = unquote(urlsplit(self.path).path)
        metadata = path.count("/") == 3 and path.startswith("/repos/")
        if metadata and mode == "api_endless":
            return _drip(self, 200, {"Content-Type": "application/json"}, 1 << 30, b'{"full_name": "')
        if metadata and mode == "api_gzip_bomb":
            self.server_obj.stats.add(self.command, self.path, 200)
            body = gzip_bomb(fill=b" ")
            self.send_response(200)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return None
        if path.startswith("/raw/") and mode == "raw_redirect_foreign":
            self.server_obj.stats.add(self.command, self.path, 302)
            self.send_response(302)
            self.send_header("Location", self.server_obj.foreign.url + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        return super().do_GET()

    def _serve_bytes(self, data: Any, headers: dict[str, str], weight: bool) -> None:
        asked = _asked_range(self.headers.get("Range"), len(data))
        if self._mode() == "endless_raw" and asked is not None and self.command == "GET":
            a, b = asked
            return _drip(self, 206, dict(headers, **{"Content-Range": f"bytes {a}-{b}/{len(data)}"}), b - a + 1)
        return super()._serve_bytes(data, headers, weight)

    def _contents(self, full: str, path: str, ref: str | None) -> None:
        if mode_of(full) != "download_url_foreign":
            return super()._contents(full, path, ref)
        sha = self.server_obj.head(full, ref or self.server_obj.repos[full]["default_branch"])
        self._json(
            200,
            {
                "type": "file",
                "path": path,
                "sha": "",
                "download_url": f"{self.server_obj.foreign.url}/raw/{full}/{sha}/{path}",
            },
            self._headers(),
        )
