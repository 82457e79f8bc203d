"""A local GitHub REST API: repo metadata, org repo listing (paginated with Link), commits/{ref} with ETag → 304,
git trees, contents (download_url) and raw downloads with Range. `clone_url` points at bare git repos, built with
gitpython and served over file://.

`GitHubServer(root)`; `server.add_repo("org/name", files, lfs={"model.safetensors": b"..."}, fork=…, archived=…)`
commits `files` (and LFS pointers for `lfs`, whose content is kept in the server's LFS store) to a bare repo.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import git

from .hub import BaseHandler, BaseServer

LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n"


class GitHubServer(BaseServer):
    PAGE = 30

    def __init__(self, root: str | os.PathLike[str], tokens: set[str] | None = None):
        super().__init__()
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.tokens = set(tokens or ())
        self.repos: dict[str, dict[str, Any]] = {}
        self.lfs: dict[str, bytes] = {}
        self.handler_cls = GitHubHandler

    def bare_path(self, full: str) -> Path:
        return self.root / f"{full}.git"

    def add_repo(
        self,
        full: str,
        files: dict[str, bytes | str],
        lfs: dict[str, bytes] | None = None,
        branch: str = "main",
        **meta: Any,
    ) -> str:
        """Create (or add a commit to) `full`; returns the new head sha."""
        bare = self.bare_path(full)
        work = Path(tempfile.mkdtemp(prefix="gh-work-"))
        try:
            if bare.exists():
                repo = git.Repo.clone_from(bare.as_uri(), work)
            else:
                repo = git.Repo.init(work, initial_branch=branch)
            with repo.config_writer() as cw:
                cw.set_value("user", "name", "Test")
                cw.set_value("user", "email", "test@example.invalid")
            for rel, content in files.items():
                p = work / rel
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(content.encode() if isinstance(content, str) else content)
            for rel, content in (lfs or {}).items():
                oid = hashlib.sha256(content).hexdigest()
                self.lfs[oid] = content
                p = work / rel
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_text(LFS_POINTER.format(oid=oid, size=len(content)))
            repo.git.add("-A")
            repo.git.commit("-m", "update", "--allow-empty")
            sha = repo.head.commit.hexsha
            if not bare.exists():
                bare.parent.mkdir(parents=True, exist_ok=True)
                git.Repo.clone_from(work.as_posix(), bare, bare=True)
                b = git.Repo(bare)
                with b.config_writer() as cw:
                    cw.set_value("uploadpack", "allowFilter", "true")
                    cw.set_value("uploadpack", "allowAnySHA1InWant", "true")
                b.close()
            else:
                repo.git.push("origin", f"HEAD:{branch}")
            repo.close()
        finally:
            shutil.rmtree(work, ignore_errors=True)
        info = self.repos.setdefault(
            full, {"default_branch": branch, "fork": False, "archived": False, "private": False}
        )
        info.update(meta)
        return sha

    def head(self, full: str, ref: str) -> str | None:
        b = git.Repo(self.bare_path(full))
        try:
            return b.commit(ref).hexsha
        except Exception:
            return None
        finally:
            b.close()


class GitHubHandler(BaseHandler):
    server_obj: GitHubServer

    def do_HEAD(self) -> None:
        self.do_GET()

    def _headers(self) -> dict[str, str]:
        return {"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "4999", "X-RateLimit-Reset": "0"}

    def do_GET(self) -> None:
        if self._pre_faults():
            return None
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        q = parse_qs(parts.query)
        m = re.match(r"^/(?:orgs|users)/([^/]+)/repos$", path)
        if m:
            return self._list(m.group(1), q)
        m = re.match(r"^/repos/([^/]+/[^/]+)$", path)
        if m:
            return self._repo(m.group(1))
        m = re.match(r"^/repos/([^/]+/[^/]+)/commits/(.+)$", path)
        if m:
            return self._commit(m.group(1), m.group(2))
        m = re.match(r"^/repos/([^/]+/[^/]+)/git/trees/([^/]+)$", path)
        if m:
            return self._tree(m.group(1), m.group(2))
        m = re.match(r"^/repos/([^/]+/[^/]+)/contents/(.+)$", path)
        if m:
            return self._contents(m.group(1), m.group(2), q.get("ref", [None])[0])
        m = re.match(r"^/raw/([^/]+/[^/]+)/([0-9a-f]{40})/(.+)$", path)
        if m:
            return self._raw(m.group(1), m.group(2), m.group(3))
        return self._json(404, {"message": "Not Found"}, self._headers())

    def _meta(self, full: str) -> dict[str, Any]:
        srv = self.server_obj
        info = srv.repos[full]
        owner, name = full.split("/")
        return {
            "name": name,
            "full_name": full,
            "owner": {"login": owner},
            "private": info["private"],
            "fork": info["fork"],
            "archived": info["archived"],
            "default_branch": info["default_branch"],
            "clone_url": srv.bare_path(full).as_uri(),
            "html_url": f"{srv.url}/{full}",
            "license": info.get("license"),
        }

    def _known(self, full: str) -> bool:
        if full not in self.server_obj.repos:
            self._json(404, {"message": "Not Found"}, self._headers())
            return False
        return True

    def _list(self, org: str, q: dict[str, list[str]]) -> None:
        srv = self.server_obj
        names = sorted(f for f in srv.repos if f.split("/")[0] == org)
        if not names:
            return self._json(404, {"message": "Not Found"}, self._headers())
        per = int(q.get("per_page", [str(srv.PAGE)])[0])
        per = min(per, srv.PAGE)  # the server's page size wins, so tests see several pages
        page = int(q.get("page", ["1"])[0])
        chunk = names[(page - 1) * per : page * per]
        h = self._headers()
        if page * per < len(names):
            h["Link"] = (
                f'<{srv.url}/orgs/{org}/repos?per_page={per}&page={page + 1}>; rel="next", '
                f"<{srv.url}/orgs/{org}/repos?per_page={per}&page={(len(names) + per - 1) // per}>; "
                'rel="last"'
            )
        self._json(200, [self._meta(f) for f in chunk], h)

    def _repo(self, full: str) -> None:
        if self._known(full):
            self._json(200, self._meta(full), self._headers())

    def _commit(self, full: str, ref: str) -> None:
        if not self._known(full):
            return
        sha = self.server_obj.head(full, ref)
        if sha is None:
            return self._json(422, {"message": "No commit found for SHA: " + ref}, self._headers())
        etag = f'"{hashlib.sha1(sha.encode()).hexdigest()}"'
        h = self._headers()
        h["ETag"] = etag
        if self.headers.get("If-None-Match") == etag:
            return self._send(304, b"", h)
        self._json(200, {"sha": sha, "commit": {"message": "update"}}, h)

    def _tree(self, full: str, sha: str) -> None:
        if not self._known(full):
            return
        b = git.Repo(self.server_obj.bare_path(full))
        try:
            out = []
            for line in b.git.ls_tree("-r", "-l", sha).splitlines():
                info, path = line.split("\t", 1)
                mode, otype, oid, size = info.split()
                out.append(
                    {"path": path, "mode": mode, "type": otype, "sha": oid, "size": int(size) if size != "-" else None}
                )
        finally:
            b.close()
        self._json(200, {"sha": sha, "tree": out, "truncated": False}, self._headers())

    def _blob(self, full: str, sha: str, path: str) -> bytes | None:
        b = git.Repo(self.server_obj.bare_path(full))
        try:
            return b.git.show(f"{sha}:{path}", stdout_as_string=False)
        except git.GitCommandError:
            return None
        finally:
            b.close()

    def _contents(self, full: str, path: str, ref: str | None) -> None:
        if not self._known(full):
            return
        sha = self.server_obj.head(full, ref or self.server_obj.repos[full]["default_branch"])
        data = self._blob(full, sha, path) if sha else None
        if data is None:
            return self._json(404, {"message": "Not Found"}, self._headers())
        self._json(
            200,
            {
                "type": "file",
                "path": path,
                "size": len(data),
                "sha": "",
                "download_url": f"{self.server_obj.url}/raw/{full}/{sha}/{path}",
            },
            self._headers(),
        )

    def _raw(self, full: str, sha: str, path: str) -> None:
        if not self._known(full):
            return
        data = self._blob(full, sha, path)
        if data is None:
            return self._json(404, {"message": "Not Found"})
        m = re.search(rb"oid sha256:([0-9a-f]{64})", data) if data.startswith(b"version https://git-lfs") else None
        if m and m.group(1).decode() in self.server_obj.lfs:
            data = self.server_obj.lfs[m.group(1).decode()]  # like media.githubusercontent.com for LFS files
        self._serve_bytes(data, {"ETag": f'"{hashlib.sha256(data).hexdigest()}"'}, weight=True)
