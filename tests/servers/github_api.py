"""A tiny stand-in for the GitHub REST API calls originscan's CI mode makes: issue comments (list, create,
update) and issues (list, create, update), with Link-header pagination. Every call is recorded.

    with GitHubAPIServer(token="t0k") as api:      # 127.0.0.1, random port
        api.url                                     # pass as api_url / GITHUB_API_URL
        api.comments[("o/r", 7)]                    # the comments on PR 7
        api.calls                                   # [Call(method, path, query, body, authorized), …]
        api.fail_comments = 403                     # comment endpoints answer 403 from now on

Stdlib only (ThreadingHTTPServer), so it can run anywhere the tests run.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    authorized: bool
    auth_header: str | None = None


@dataclass
class State:
    token: str | None
    page_size: int = 30
    fail_comments: int | None = None
    fail_issues: int | None = None
    calls: list[Call] = field(default_factory=list)
    comments: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    issues: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    next_id: int = 1000
    lock: threading.Lock = field(default_factory=threading.Lock)


class Handler(BaseHTTPRequestHandler):
    server_version = "FakeGitHub/1.0"
    state: State  # set on the subclass

    def log_message(self, fmt: str, *args: Any) -> None:  # quiet
        pass

    # -- plumbing ---------------------------------------------------------------------------------------------------
    def _send(self, status: int, payload: Any = None, headers: dict[str, str] | None = None) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            return json.loads(raw) if raw else None
        except json.JSONDecodeError:
            return {"_raw": raw.decode("latin-1")}

    def _page(self, items: list[dict[str, Any]], url: urlsplit, query: dict[str, list[str]]) -> None:
        st = self.state
        per = min(int((query.get("per_page") or [st.page_size])[0]), 100)
        page = max(int((query.get("page") or ["1"])[0]), 1)
        chunk = items[(page - 1) * per : page * per]
        headers = {}
        if page * per < len(items):
            host = self.headers.get("Host")
            headers["Link"] = f'<http://{host}{url.path}?per_page={per}&page={page + 1}>; rel="next"'
        self._send(200, chunk, headers)

    def _handle(self, method: str) -> None:
        st = self.state
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        body = self._body() if method in ("POST", "PATCH") else None
        auth = self.headers.get("Authorization")
        ok = st.token is None or auth == f"Bearer {st.token}"
        with st.lock:
            st.calls.append(Call(method, url.path, query, body, ok, auth))
        if not ok:
            return self._send(401, {"message": "Bad credentials"})
        path = url.path
        m = re.fullmatch(r"/repos/([^/]+/[^/]+)/issues/(\d+)/comments", path)
        if m:
            if st.fail_comments:
                return self._send(st.fail_comments, {"message": "Resource not accessible by integration"})
            key = (m.group(1), int(m.group(2)))
            with st.lock:
                comments = st.comments.setdefault(key, [])
                if method == "GET":
                    items = list(comments)
                elif method == "POST":
                    st.next_id += 1
                    c = {
                        "id": st.next_id,
                        "body": (body or {}).get("body", ""),
                        "user": {"login": "github-actions[bot]", "type": "Bot"},
                    }
                    comments.append(c)
                    return self._send(201, c)
                else:
                    return self._send(405, {"message": "no"})
            return self._page(items, url, query)
        m = re.fullmatch(r"/repos/([^/]+/[^/]+)/issues/comments/(\d+)", path)
        if m and method == "PATCH":
            if st.fail_comments:
                return self._send(st.fail_comments, {"message": "Resource not accessible by integration"})
            with st.lock:
                for (r, _), cs in st.comments.items():
                    for c in cs:
                        if r == m.group(1) and c["id"] == int(m.group(2)):
                            c["body"] = (body or {}).get("body", c["body"])
                            return self._send(200, c)
            return self._send(404, {"message": "Not Found"})
        m = re.fullmatch(r"/repos/([^/]+/[^/]+)/issues", path)
        if m:
            if st.fail_issues:
                return self._send(st.fail_issues, {"message": "Resource not accessible by integration"})
            with st.lock:
                issues = st.issues.setdefault(m.group(1), [])
                if method == "GET":
                    state = (query.get("state") or ["open"])[0]
                    items = [i for i in issues if state == "all" or i["state"] == state]
                    items = sorted(items, key=lambda i: -i["number"])
                elif method == "POST":
                    number = len(issues) + 1
                    issue = {
                        "number": number,
                        "title": (body or {}).get("title", ""),
                        "body": (body or {}).get("body", ""),
                        "state": "open",
                        "html_url": f"https://github.example/{m.group(1)}/issues/{number}",
                        "user": {"login": "github-actions[bot]", "type": "Bot"},
                    }
                    issues.append(issue)
                    return self._send(201, issue)
                else:
                    return self._send(405, {"message": "no"})
            return self._page(items, url, query)
        m = re.fullmatch(r"/repos/([^/]+/[^/]+)/issues/(\d+)", path)
        if m and method == "PATCH":
            with st.lock:
                for issue in st.issues.get(m.group(1), []):
                    if issue["number"] == int(m.group(2)):
                        issue.update({k: v for k, v in (body or {}).items() if k in ("title", "body", "state")})
                        return self._send(200, issue)
            return self._send(404, {"message": "Not Found"})
        return self._send(404, {"message": "Not Found"})

    def do_GET(self) -> None:  # noqa: N802
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_PATCH(self) -> None:  # noqa: N802
        self._handle("PATCH")


class GitHubAPIServer:
    def __init__(self, token: str | None = None, page_size: int = 30):
        self.state = State(token=token, page_size=page_size)
        handler = type("BoundHandler", (Handler,), {"state": self.state})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def calls(self) -> list[Call]:
        return self.state.calls

    @property
    def comments(self) -> dict[tuple[str, int], list[dict[str, Any]]]:
        return self.state.comments

    @property
    def issues(self) -> dict[str, list[dict[str, Any]]]:
        return self.state.issues

    @property
    def fail_comments(self) -> int | None:
        return self.state.fail_comments

    @fail_comments.setter
    def fail_comments(self, status: int | None) -> None:
        self.state.fail_comments = status

    @property
    def fail_issues(self) -> int | None:
        return self.state.fail_issues

    @fail_issues.setter
    def fail_issues(self, status: int | None) -> None:
        self.state.fail_issues = status

    def add_comment(self, repo: str, number: int, body: str, user: str = "someone", kind: str = "User") -> dict:
        with self.state.lock:
            self.state.next_id += 1
            c = {"id": self.state.next_id, "body": body, "user": {"login": user, "type": kind}}
            self.state.comments.setdefault((repo, number), []).append(c)
            return c

    def add_issue(self, repo: str, title: str, body: str = "", state: str = "open", pull_request: bool = False):
        with self.state.lock:
            issues = self.state.issues.setdefault(repo, [])
            issue = {
                "number": len(issues) + 1,
                "title": title,
                "body": body,
                "state": state,
                "html_url": f"https://github.example/{repo}/issues/{len(issues) + 1}",
            }
            if pull_request:
                issue["pull_request"] = {"url": "x"}
            issues.append(issue)
            return issue

    def writes(self) -> list[Call]:
        return [c for c in self.calls if c.method in ("POST", "PATCH")]

    def start(self) -> GitHubAPIServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> GitHubAPIServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
