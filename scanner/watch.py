"""`originscan watch`: which public model repos, new or changed since the last run, derive from my models.

The inverse of `scan`. The watched models are the ones registered in the fingerprint index (`index add`, `index
update` or an imported pack); the Hub's listing (`HfApi.list_models(sort="lastModified")`, newest first) is walked
down to the previous run's high-water mark, and each listed repo goes through the cheapest test that can rule it
out, in this order:

  listing  free (one listing page holds up to 1000 repos): a repo whose sha was already judged is skipped, and so
           is one with no safetensors or GGUF file (nothing to compare) or one of the owners' own repos.
  config   one GET of config.json: when every width it declares (hidden_size, d_model, n_embd, …, also under
           text_config and the like) differs from every watched model's hidden size, the repo is ruled out with 0
           weight bytes. A checkpoint whose config declares another width than its weights does not load, so a
           copy that wants users keeps it true. Width-pruned derivatives are not looked for (as in search.py).
  header   the snapshot (file list with LFS sha256s, card, small JSON) and the weight headers, through
           views.open_model (safetensors, quantized or GGUF): exact copies by sha256, other hidden sizes from
           tensor shapes.
  rows     search.find_matches: the screen on the head rows (token ids 0-95, read with the header where they fit)
           or, for an upstream registered without them, on 128 sampled token rows; then the full test on the
           survivors.

The cursor, the judged shas and the runs are kept in SQLite (`WatchState`). A run stops before the request budget
is spent, or when the listing fails after retries; the high-water mark only moves when a run reached it, so the
next run resumes (repos already judged cost nothing but their listing row). Vocabulary size, architecture names
and special tokens are reported as evidence, never used to rule out: vocabulary extension and renamed
architectures are derivations.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from scanner import interrupt
from scanner.errors import SourceError, UsageError
from scanner.file_formats import tells
from scanner.provenance.index import Index
from scanner.shards import in_shard
from scanner.watch_report import Suspect, Watched, WatchReport

LISTING_FIELDS = ["sha", "lastModified", "siblings", "cardData", "tags"]  # what the listing-row test reads
WIDTH_KEYS = frozenset(
    {
        "hidden_size",
        "d_model",
        "n_embd",
        "dim",
        "embed_dim",
        "hidden_dim",
        "model_dim",
        "n_embed",
        "word_embed_proj_dim",
    }
)
HUB_URL = "https://huggingface.co"
COULD_NOT_LIST = "could not list the Hub's models"  # how a run whose listing failed says so (cli: exit 2)
MAX_ATTEMPTS = 3  # a repo that fails this many runs at the same sha stops holding the cursor back
SCHEMA = """
CREATE TABLE IF NOT EXISTS cursors (key TEXT PRIMARY KEY, watermark TEXT, updated TEXT);
CREATE TABLE IF NOT EXISTS seen (
  repo TEXT PRIMARY KEY, sha TEXT, last_modified TEXT, stage TEXT NOT NULL, reason TEXT, widths TEXT,
  watch_key TEXT, suspects TEXT, checked TEXT, attempts INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS runs (
  id INTEGER PRIMARY KEY AUTOINCREMENT, cursor TEXT, started TEXT, finished TEXT, complete INTEGER, stopped TEXT,
  requests INTEGER, listed INTEGER, evaluated INTEGER, suspects INTEGER
);
"""


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def default_state_path() -> Path:
    env = os.environ.get("ORIGINSCAN_WATCH_STATE")
    return Path(env) if env else Path(platformdirs.user_cache_dir("originscan")) / "watch.sqlite"


# -- what is watched ---------------------------------------------------------------------------------------------
def watched_models(index: Index) -> list[Watched]:
    return [
        Watched(c.reg.name, c.reg.target, c.reg.license, c.reg.fingerprint, c.kind, c.hidden, c.vocab)
        for c in index.candidates()
    ]


def watch_key(watched: list[Watched]) -> str:
    """Names the watched set: judgements made for another set are not reused (except the set-independent ones)."""
    return hashlib.sha256("\n".join(sorted(f"{w.name}\0{w.key}" for w in watched)).encode()).hexdigest()[:16]


# -- a listed repo -----------------------------------------------------------------------------------------------
@dataclass
class Listed:
    repo_id: str
    sha: str | None
    last_modified: dt.datetime | None
    files: list[str]
    card: dict[str, Any] | None
    tags: list[str]

    @classmethod
    def from_info(cls, info: Any) -> Listed:
        card = info.card_data.to_dict() if getattr(info, "card_data", None) is not None else None
        lm = info.last_modified
        if lm is not None and lm.tzinfo is None:
            lm = lm.replace(tzinfo=dt.UTC)
        return cls(info.id, info.sha, lm, [s.rfilename for s in (info.siblings or [])], card, list(info.tags or []))

    @property
    def weight_files(self) -> list[str]:
        return [f for f in self.files if tells(f, "tensors")]  # weights a verdict can be read from


# -- judgements --------------------------------------------------------------------------------------------------
@dataclass
class Outcome:
    repo: str
    sha: str | None
    last_modified: str | None
    stage: str  # listing | config | header | rows | error
    reason: str
    widths: list[int] = field(default_factory=list)
    suspects: list[Suspect] = field(default_factory=list)
    weight_bytes_read: int = 0
    screened_out: int = 0
    compared: int = 0


def declared_widths(config: Any) -> set[int]:
    """Every width a config declares, at the top level or one object down (text_config, llm_config …)."""
    out: set[int] = set()
    if not isinstance(config, dict):
        return out
    for obj in [config] + [v for v in config.values() if isinstance(v, dict)]:
        for k, v in obj.items():
            if k in WIDTH_KEYS and isinstance(v, int) and not isinstance(v, bool) and v > 0:
                out.add(v)
    return out


def _norm_id(text: str) -> str:
    t = text.strip().lower()
    for prefix in ("hf:", "https://huggingface.co/", "http://huggingface.co/", "huggingface.co/"):
        t = t.removeprefix(prefix)
    return t.split("@", 1)[0].strip("/")


def declared_bases(card: dict[str, Any] | None, tags: Iterable[str], jsons: dict[str, Any]) -> list[str]:
    """Base models the repo names: the card's base_model, the Hub's base_model tags, an adapter's base."""
    out: list[str] = []
    base = (card or {}).get("base_model")
    if isinstance(base, str):
        out.append(base)
    elif isinstance(base, list):
        out += [b for b in base if isinstance(b, str)]
    for tag in tags:
        if tag.startswith("base_model:"):
            out.append(tag.rsplit(":", 1)[-1])
    adapter = jsons.get("adapter_config.json")
    if isinstance(adapter, dict) and isinstance(adapter.get("base_model_name_or_path"), str):
        out.append(adapter["base_model_name_or_path"])
    return sorted({_norm_id(b) for b in out if b.strip()})


def declares(bases: list[str], watched: Watched, declared_derivatives: set[str]) -> list[str]:
    """The bases that account for `watched`: the watched model itself, or a repo already found to be a declared
    derivative of it (a fine-tune of a declared fine-tune declares its lineage too)."""
    own = {_norm_id(watched.name)} | ({_norm_id(watched.repo_id)} if watched.repo_id else set())
    return [b for b in bases if b in own or b in declared_derivatives]


# -- state ---------------------------------------------------------------------------------------------------------
class WatchState:
    """The cursor (high-water mark per watched set and shard), every judged repo's sha, and the runs."""

    def __init__(self, path: str | os.PathLike[str] | None = None):
        self.path = Path(path) if path else default_state_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, timeout=30)
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise UsageError(f"watch state {self.path}: {exc}") from None

    def close(self) -> None:
        self.db.close()

    def watermark(self, cursor: str) -> dt.datetime | None:
        row = self.db.execute("SELECT watermark FROM cursors WHERE key=?", (cursor,)).fetchone()
        return dt.datetime.fromisoformat(row[0]) if row and row[0] else None

    def set_watermark(self, cursor: str, when: dt.datetime) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO cursors VALUES (?,?,?)", (cursor, when.isoformat(), _now()))

    def unchanged(self, listed: Listed, key: str, widths: set[int]) -> bool:
        """True when this sha was judged before and that judgement still holds for the watched set."""
        row = self.db.execute(
            "SELECT sha, stage, widths, watch_key, attempts FROM seen WHERE repo=?", (listed.repo_id,)
        ).fetchone()
        if row is None or not listed.sha or row[0] != listed.sha:
            return False
        sha, stage, seen_widths, seen_key, attempts = row
        if stage == "error":
            return int(attempts) >= MAX_ATTEMPTS
        if seen_key == key or stage == "listing":
            return True
        # A width judgement holds for any watched set that has none of those widths.
        return stage in ("config", "header") and bool(seen_widths) and not set(json.loads(seen_widths)) & widths

    def record(self, o: Outcome, key: str) -> int:
        """Store a judgement; returns the attempts so far for an error at this sha (0 otherwise)."""
        attempts = 0
        if o.stage == "error":
            row = self.db.execute("SELECT sha, stage, attempts FROM seen WHERE repo=?", (o.repo,)).fetchone()
            attempts = 1 + (row[2] if row and row[0] == o.sha and row[1] == "error" else 0)
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO seen VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    o.repo,
                    o.sha,
                    o.last_modified,
                    o.stage,
                    o.reason,
                    json.dumps(sorted(o.widths)),
                    key,
                    json.dumps([s.to_json() for s in o.suspects]),
                    _now(),
                    attempts,
                ),
            )
        return attempts

    def forget(self, repos: Iterable[str]) -> None:
        """Drop these repos' judgements: the next run judges them whole."""
        with self.db:
            self.db.executemany("DELETE FROM seen WHERE repo=?", [(r,) for r in repos])

    def declared_derivatives(self, watched: str) -> set[str]:
        """Repos already found to derive from `watched` with the card saying so."""
        out = set()
        for repo, suspects in self.db.execute("SELECT repo, suspects FROM seen WHERE stage='rows'"):
            if any(s["watched"] == watched and s["declared"] for s in json.loads(suspects or "[]")):
                out.add(repo.lower())
        return out

    def record_run(self, cursor: str, report: WatchReport) -> None:
        s = report.stats
        with self.db:
            self.db.execute(
                "INSERT INTO runs(cursor, started, finished, complete, stopped, requests, listed, "
                "evaluated, suspects) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    cursor,
                    report.started,
                    _now(),
                    int(report.complete),
                    report.stopped,
                    s.requests,
                    s.listed,
                    s.evaluated,
                    len(report.suspects),
                ),
            )


# -- one run ------------------------------------------------------------------------------------------------------
@dataclass
class _Context:
    watched: list[Watched]
    widths: set[int]
    index_path: Path
    token: str | None
    endpoint: str | None
    owners: set[str]
    declared_derivatives: dict[str, set[str]]
    local: threading.local = field(default_factory=threading.local)

    def index(self) -> Index:
        # sqlite3 connections belong to their thread: each worker opens its own view of the index.
        index: Index | None = getattr(self.local, "index", None)
        if index is None:
            index = self.local.index = Index(self.index_path)
        return index


def evaluate(listed: Listed, ctx: _Context) -> Outcome:
    """Judge one listed repo, cheapest test first (see the module docstring)."""
    lm = listed.last_modified.isoformat() if listed.last_modified else None

    def out(stage: str, reason: str, **kw: Any) -> Outcome:
        return Outcome(listed.repo_id, listed.sha, lm, stage, reason, **kw)

    if not listed.weight_files:
        return out("listing", "no safetensors or GGUF weight file")
    if listed.repo_id.split("/")[0].lower() in ctx.owners or any(
        w.repo_id and w.repo_id.lower() == listed.repo_id.lower() for w in ctx.watched
    ):
        return out("listing", "a watched model or one of its owners' repos")
    widths: set[int] = set()
    known: dict[str, bytes] = {}  # files read here, handed to the snapshot so that it does not fetch them again
    if "config.json" in listed.files and ctx.widths:
        from scanner.sources.hf import read_small_file

        data = read_small_file(listed.repo_id, "config.json", ctx.token, ctx.endpoint, revision=listed.sha)
        if data is not None:
            known["config.json"] = data
        text = data.decode("utf-8", errors="replace") if data is not None else None
        try:
            widths = declared_widths(json.loads(text)) if text else set()
        except (ValueError, RecursionError):
            widths = set()
        if widths and not widths & ctx.widths and not any(w.kind != "rows" for w in ctx.watched):
            return out(
                "config",
                f"config.json declares width {sorted(widths)}; watched: {sorted(ctx.widths)}",
                widths=sorted(widths),
            )
    return _weights(listed, ctx, out, widths, known)


def _weights(
    listed: Listed, ctx: _Context, out: Callable[..., Outcome], widths: set[int], known: dict[str, bytes]
) -> Outcome:
    from scanner.provenance.search import find_matches
    from scanner.provenance.views import open_model
    from scanner.sources.hf import HFSource

    snap = HFSource(
        listed.repo_id,
        revision=listed.sha,
        token=ctx.token,
        endpoint=ctx.endpoint,
        cache=False,
        target=f"hf:{listed.repo_id}",
        known=known,
    ).snapshot()
    if not snap.weight_files():  # gated or private without a token: judged as far as it could be
        why = "; ".join(p.message for p in snap.problems) or "no weight files"
        return out("header", why[:300])
    model = open_model(snap)
    try:
        matches, stats = find_matches(model, ctx.index(), snap.target)
        hidden = model.structure.hidden
        bytes_read = model.bytes_read
    finally:
        close = getattr(model, "close", None)
        if close is not None:
            close()
    card = snap.meta.get("card_data") or listed.card
    bases = declared_bases(card, listed.tags + list(snap.meta.get("tags") or []), snap.jsons)
    suspects = []
    by_name = {w.name: w for w in ctx.watched}
    for reg, verdict in matches:
        if verdict.verdict != "derived" or reg.name not in by_name:
            continue
        w = by_name[reg.name]
        named = declares(bases, w, ctx.declared_derivatives.get(w.name, set()))
        rev = snap.revision or listed.sha
        links = {
            "repo": f"{HUB_URL}/{listed.repo_id}",
            "files": f"{HUB_URL}/{listed.repo_id}/tree/{rev}" if rev else f"{HUB_URL}/{listed.repo_id}",
        }
        if w.repo_id:
            links["watched"] = f"{HUB_URL}/{w.repo_id}"
        suspects.append(Suspect(listed.repo_id, rev, w.name, w.target, verdict, bool(named), named, bases, links))
    if hidden is None and not stats.exact:
        reason = "; ".join(model.problems)[:300] or "no token matrix found in the weights"
        return out("header", reason, weight_bytes_read=bytes_read)
    if suspects:
        return out(
            "rows",
            f"derived from {', '.join(s.watched for s in suspects)}",
            widths=sorted(widths),
            suspects=suspects,
            weight_bytes_read=bytes_read,
            screened_out=stats.screened_out,
            compared=stats.compared,
        )
    if stats.compared or stats.screened_out:
        return out(
            "rows",
            f"hidden {hidden}: screened out {stats.screened_out}, independent after the full test {stats.compared}",
            weight_bytes_read=bytes_read,
            screened_out=stats.screened_out,
            compared=stats.compared,
        )
    return out(
        "header",
        f"weights of hidden size {hidden}; watched: {sorted(ctx.widths)}",
        widths=sorted(widths | ({hidden} if hidden else set())),
        weight_bytes_read=bytes_read,
    )


def _declared_through(
    suspects: list[Suspect], known: dict[str, set[str]], outcomes: dict[str, Outcome]
) -> list[Outcome]:
    """A suspect whose card names a declared derivative of the same watched model (found in this run, in any
    order, or before) declares its lineage too. Returns the outcomes that changed."""
    changed: dict[str, Outcome] = {}
    for s in suspects:
        if s.declared:
            known.setdefault(s.watched, set()).add(s.repo.lower())
    grew = True
    while grew:
        grew = False
        for s in suspects:
            if s.declared:
                continue
            through = [b for b in s.declared_bases if b in known.get(s.watched, set())]
            if through:
                s.declared, s.declared_as, grew = True, through, True
                known[s.watched].add(s.repo.lower())
                if s.repo in outcomes:
                    changed[s.repo] = outcomes[s.repo]
    return list(changed.values())


def _listing(token: str | None, endpoint: str | None) -> Iterator[Any]:
    from scanner.sources.hf import hub_api

    # The Hub sorts by its own field name, which the client passes on as it is (its annotation knows only snake_case
    # aliases); the expand names are the Hub's too.
    sort: Any = "lastModified"
    expand: Any = LISTING_FIELDS
    return iter(hub_api(endpoint, token).list_models(sort=sort, expand=expand))


def run_watch(
    index: Index,
    state: WatchState,
    *,
    budget: int = 20000,
    shard: tuple[int, int] | None = None,
    workers: int = 4,
    since: dt.datetime | None = None,
    owners: Iterable[str] = (),
    token: str | None = None,
    endpoint: str | None = None,
    progress: Callable[[Outcome], None] | None = None,
) -> WatchReport:
    """Walk the listing down to the high-water mark (or `since`), judging this shard's new and changed repos.
    `progress` is told each judged repo's outcome as it is settled."""
    from scanner.sources import http

    watched = watched_models(index)
    if not watched:
        raise UsageError("watch: no model is registered to watch (originscan index add hf:OWNER/NAME, or --pack)")
    key = watch_key(watched)
    shard_text = f"{shard[0]}/{shard[1]}" if shard else None
    cursor = f"{key}|{shard_text or 'all'}"
    report = WatchReport(watched, shard_text, _now())
    stats = report.stats
    mark = state.watermark(cursor)
    floor = max(m for m in (mark, since) if m is not None) if (mark or since) else None
    ctx = _Context(
        watched,
        {w.hidden for w in watched if w.kind == "rows" and w.hidden},
        index.path,
        token,
        endpoint,
        {o.lower() for o in owners} | {w.repo_id.split("/")[0].lower() for w in watched if w.repo_id},
        {w.name: state.declared_derivatives(w.name) for w in watched},
    )
    first = http.SENT.count
    started = time.perf_counter()
    top: dt.datetime | None = None
    pending: dict[Future[Outcome], Listed] = {}

    retry_later = 0
    outcomes: dict[str, Outcome] = {}

    refused_before: dict[Future[Outcome], int] = {}  # requests refused for the budget when each evaluation started
    cut_short: set[str] = set()  # repos whose judgement may have lost a request; judged again next run

    def settle(done: Iterable[Future[Outcome]]) -> None:
        nonlocal retry_later
        for fut in done:
            listed = pending.pop(fut)
            if http.SENT.refused > refused_before.pop(fut):
                # A request refused for the budget while this repo was judged may have been one whose failure is
                # tolerated (a card, a config): the judgement may lack it. Not recorded; the next run judges it.
                report.stopped = f"request budget of {budget} spent"
                cut_short.add(listed.repo_id.lower())
                continue
            try:
                o = fut.result()
            except Exception as exc:  # one broken repo never stops the watch; it is judged again next run
                lm = listed.last_modified.isoformat() if listed.last_modified else None
                o = Outcome(listed.repo_id, listed.sha, lm, "error", str(exc)[:300] or type(exc).__name__)
            if progress is not None:
                progress(o)
            if o.stage == "error":
                stats.errors += 1
                report.errors.append({"repo": o.repo, "message": o.reason})
                if state.record(o, key) < MAX_ATTEMPTS:
                    retry_later += 1
                continue
            stats.ruled_out[o.stage] += 0 if o.suspects else 1
            stats.weight_bytes_read += o.weight_bytes_read
            stats.compared += o.compared
            report.suspects += o.suspects
            state.record(o, key)
            if o.suspects:
                outcomes[o.repo] = o

    items = _listing(token, endpoint)
    # The budget is enforced where requests are sent: evaluations in flight when it is reached are refused their
    # next request instead of running past it.
    with (
        http.SENT.limited(budget),
        ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="originscan-watch") as pool,
    ):
        try:
            for info in items:
                listed = Listed.from_info(info)
                if top is None:
                    top = listed.last_modified
                if floor is not None and listed.last_modified is not None and listed.last_modified < floor:
                    report.complete = True
                    break
                stats.listed += 1
                if not in_shard(listed.repo_id, shard):
                    continue
                stats.in_shard += 1
                if state.unchanged(listed, key, ctx.widths):
                    stats.unchanged += 1
                    continue
                if http.SENT.count - first >= budget:
                    report.stopped = f"request budget of {budget} spent"
                    break
                refused = http.SENT.refused
                fut = pool.submit(evaluate, listed, ctx)
                pending[fut], refused_before[fut] = listed, refused
                stats.evaluated += 1
                while len(pending) >= 2 * max(1, workers):
                    done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                    settle(done)
            else:
                report.complete = True
        except http.BudgetSpent:
            report.stopped = f"request budget of {budget} spent"
        except (SourceError, OSError) as exc:
            report.stopped = f"{COULD_NOT_LIST}: {str(exc)[:200]}"
        except Exception as exc:  # HfHubHTTPError after huggingface_hub's own retries, httpx errors
            report.stopped = f"{COULD_NOT_LIST}: {type(exc).__name__}: {str(exc)[:200]}"
        except BaseException:  # Ctrl-C: nothing more is judged, nothing is recorded
            interrupt.abandon(pool, pending)
            raise
        settle(wait(list(pending)).done)
    for o in _declared_through(report.suspects, ctx.declared_derivatives, outcomes):
        state.record(o, key)
    # An undeclared suspect whose card names a repo cut short in this run may be declared through it (a fine-tune of
    # a declared fine-tune): its judgement waits for that repo's, so it is forgotten and judged again next run.
    waiting = {s.repo for s in report.suspects if not s.declared and {b.lower() for b in s.declared_bases} & cut_short}
    if waiting:
        report.suspects = [s for s in report.suspects if s.repo not in waiting]
        state.forget(waiting)
    if report.stopped:
        report.complete = False
    if report.complete and top is not None and retry_later == 0:
        state.set_watermark(cursor, top)
    elif report.complete and retry_later:
        report.stopped = (
            f"{retry_later} repo(s) could not be judged; the cursor stays so that the next run tries them again"
        )
        report.complete = False
    new_mark = state.watermark(cursor)
    report.watermark = new_mark.isoformat() if new_mark else None
    stats.requests = http.SENT.count - first
    stats.seconds = round(time.perf_counter() - started, 3)
    state.record_run(cursor, report)
    return report


__all__ = [
    "run_watch",
    "WatchState",
    "Listed",
    "evaluate",
    "declared_widths",
    "declared_bases",
    "default_state_path",
]
