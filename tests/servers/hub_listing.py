"""The local Hub with the Hub's model listing as `originscan watch` calls it through `HfApi.list_models`.

`GET /api/models?sort=lastModified&expand=…&limit=…` lists every public repo, newest `lastModified` first (the
Hub's only order for that sort), in pages of `limit` (at most HubServer.MAX_PAGE, 1000, where its sources are
named) linked by `Link: <…>; rel="next"`. `expand` picks the fields of each item: `sha`, `lastModified`,
`createdAt`, `siblings` (file names only, as on the Hub), `cardData` (the README's YAML front matter), `tags`
(`base_model:…` from the card, like the Hub adds), `config` (`architectures` and `model_type` only), `gated`,
`private`, `library_name`.

A repo's `lastModified` is `ROOT/ORG/NAME.hub.json`'s `lastModified` when set, else its newest file's mtime, so a
test "pushes" by writing a file. Everything else is HubServer's.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from typing import Any
from urllib.parse import quote, urlencode

import yaml

from .hub import HubHandler, HubServer, Repo


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ListingHubServer(HubServer):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.handler_cls = ListingHubHandler

    def last_modified(self, repo: Repo) -> str:
        if repo.cfg.get("lastModified"):
            return str(repo.cfg["lastModified"])
        newest = 0.0
        for dirpath, _, names in os.walk(repo.dir):
            for n in names:
                newest = max(newest, os.stat(os.path.join(dirpath, n)).st_mtime)
        return _iso(newest)

    def info(self, repo: Repo, blobs: bool, expand: list[str] | None) -> dict[str, Any]:
        out = super().info(repo, blobs, None)
        out["lastModified"] = self.last_modified(repo)
        card = self.card_data(repo)
        out["cardData"] = card
        out["tags"] = self.tags(repo, card)
        if expand:
            keep = {"_id", "id"} | set(expand)
            out = {k: v for k, v in out.items() if k in keep}
        return out

    def card_data(self, repo: Repo) -> dict[str, Any] | None:
        readme = repo.dir / "README.md"
        if not readme.is_file():
            return None
        text = readme.read_text(encoding="utf-8", errors="replace")
        if not text.startswith("---\n") or "\n---" not in text[4:]:
            return None
        try:
            data = yaml.safe_load(text[4 : text.index("\n---", 4)])
        except yaml.YAMLError:
            return None
        return data if isinstance(data, dict) else None

    def tags(self, repo: Repo, card: dict[str, Any] | None) -> list[str]:
        names = self.files(repo)
        tags = [
            t for t, ext in (("safetensors", ".safetensors"), ("gguf", ".gguf")) if any(n.endswith(ext) for n in names)
        ]
        base = (card or {}).get("base_model")
        for b in [base] if isinstance(base, str) else base if isinstance(base, list) else []:
            tags.append(f"base_model:{b}")
        return tags

    def config_summary(self, repo: Repo) -> dict[str, Any] | None:
        p = repo.dir / "config.json"
        try:
            cfg = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(cfg, dict):
            return None
        return {k: cfg[k] for k in ("architectures", "model_type") if k in cfg}

    def order(self) -> list[str]:
        """Public repo ids, newest lastModified first."""
        rows = []
        for repo_id in self.repo_ids():
            repo = self.repo(repo_id)
            if repo is not None and not repo.private:
                rows.append((self.last_modified(repo), repo_id))
        rows.sort(reverse=True)
        return [repo_id for _, repo_id in rows]

    def item(self, repo: Repo, expand: list[str]) -> dict[str, Any]:
        want = set(expand) or {"lastModified", "tags", "private"}
        base: dict[str, Any] = {"_id": repo.id, "id": repo.id, "modelId": repo.id}
        full = self.info(repo, False, None) if want - {"config"} else {}
        for k in want:
            if k == "config":
                base["config"] = self.config_summary(repo)
            elif k in full:
                base[k] = full[k]
        return base


class ListingHubHandler(HubHandler):
    server_obj: ListingHubServer

    def _list(self, q: dict[str, list[str]]) -> None:
        if q.get("sort", [None])[0] != "lastModified" or q.get("author"):
            return super()._list(q)
        expand = q.get("expand", [])
        srv = self.server_obj
        limit = max(1, min(srv.MAX_PAGE, int(q.get("limit", [str(srv.MAX_PAGE)])[0] or srv.MAX_PAGE)))
        start = int(q.get("cursor", ["0"])[0] or 0)
        rows = srv.order()
        items = [srv.item(srv.repo(repo_id), expand) for repo_id in rows[start : start + limit]]
        headers = {}
        if start + limit < len(rows):
            params = [("sort", "lastModified"), ("limit", str(limit)), ("cursor", str(start + limit))]
            params += [("expand", e) for e in expand]
            headers["Link"] = f'<{srv.url}/api/models?{urlencode(params, quote_via=quote)}>; rel="next"'
        self._json(200, items, headers)
