"""Indexed `originscan sweep` of small repos, cold and warm, old code and new side by side in one run.

    .venv/bin/python bench/speed/sweep.py [--repos 1000] [--upstreams 10] [--workers 8] [--old PATH] [--cdn]
        [--identical-pairs] [--hidden 64] [--vocab 512] [--trace STEM]

The repos are bench/sweep/bench_sweep.py's (hidden 64, vocabulary 512, fp16, one layer, unless --hidden/--vocab;
every 50th a disguised copy of an upstream, each disguised its own way unless --identical-pairs), generated in a
temporary folder outside the repository. Per code version: the upstreams are
registered (`index add`, not counted), then one sweep with an empty cache and `--index` (cold) and the same sweep
again with nothing changed (warm). The server counts requests (all of them, by kind, and those for weight files)
and weight bytes served; with --cdn it redirects LFS downloads to a CDN path as the Hub does, and req/repo counts
the Hub's requests apart from the CDN's (what the Hub's rate limit sees). Findings are compared repo by repo (every
rule and p-value): old cold against new cold, and each code's warm run against its cold one; the last lines say for
how many repos they are the same (exit 1 if any differs). Requests and bytes do not depend on the machine's load;
wall time does, so the sweep's CPU seconds (user + system of the sweep process) are printed beside it. Each run's
requests beyond a repo's info, card and one weight read are named (the listing, small files read once for the
organisation, weight reads after a repo's first); --trace writes every request with its Range header.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench" / "speed"), str(ROOT / "bench" / "sweep")]

from bench_sweep import COPY_EVERY, generate  # noqa: E402
from common import add_old_argument, machine_load, sides  # noqa: E402
from servers.hub import HubServer  # noqa: E402


def request_kind(path: str) -> str:
    """What a request to the local Hub was for: the listing, a repo's info, its card, its weights, another file."""
    path = path.split("?")[0]
    if path.startswith("/cdn/"):
        return "weights from the CDN"
    if path.startswith("/api/"):
        return "listing" if path.rstrip("/").count("/") <= 2 else "info"
    if path.endswith(".safetensors"):
        return "weights"
    return "card" if path.endswith("/README.md") else "other files"


def beyond_three(log: list[tuple[str, str, int]]) -> str:
    """The requests beyond a repo's info, card and one weight read, each named: the listing, small files read once
    for the whole organisation (the same git blob in every repo), and weight reads after a repo's first (a disguised
    copy of an upstream, every COPY_EVERY-th; another repo's screen rows or its full test); and the repos whose
    weights needed no request (their content kept whole from another repo)."""
    weights: Counter[str] = Counter()
    shared: list[str] = []
    listing = 0
    infos: set[str] = set()
    cdn = any(request_kind(path) == "weights from the CDN" for _, path, _ in log)
    for _, path, _ in log:
        kind = request_kind(path)
        parts = path.split("?")[0].split("/")
        if kind == ("weights from the CDN" if cdn else "weights"):  # with --cdn every read reaches the CDN once
            weights["/".join(parts[2:4] if cdn else parts[1:3])] += 1
        elif kind == "other files":
            shared.append(path.rsplit("/", 1)[-1])
        elif kind == "listing":
            listing += 1
        elif kind == "info":
            infos.add(parts[3] + "/" + parts[4])
    again = sorted(repo for repo, n in weights.items() for _ in range(n - 1))
    copies = [r for r in again if int(r.rsplit("-", 1)[-1]) % COPY_EVERY == 0]
    others = [r for r in again if r not in copies]
    return (
        f"listing {listing}; small files read once for the organisation {len(shared)} ({', '.join(sorted(shared))}); "
        f"weight reads after a repo's first {len(again)}: {len(copies)} of disguised copies (the full test), "
        f"{len(others)} of {len(set(others))} other repos (the screen's rows where the first read did not hold them, "
        f"or a repo the screen passed: {', '.join(sorted(set(others))[:5]) or 'none'}"
        f"{' …' if len(set(others)) > 5 else ''}); "
        f"repos read with no weight request of their own {len(infos - set(weights))}"
    )


def write_trace(stem: Path, key: str, stats: object) -> None:
    """Every request of one run, in the order the server answered them, with its kind and Range header."""
    path = stem.with_name(f"{stem.name}-{key.replace(' ', '-')}.tsv")
    lines = ["kind\tmethod\tstatus\trange\tpath"]
    for (method, p, status), rng in zip(stats.log, stats.ranges, strict=True):  # type: ignore[attr-defined]
        lines.append(f"{request_kind(p)}\t{method}\t{status}\t{rng or ''}\t{p}")
    path.write_text("\n".join(lines) + "\n")
    print(f"{key}: {len(lines) - 1} requests traced to {path}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repos", type=int, default=1000)
    ap.add_argument("--upstreams", type=int, default=10)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--only", choices=["old", "new"], default=None)
    ap.add_argument(
        "--cdn",
        action="store_true",
        help="LFS downloads redirected to a CDN path as the Hub does; req/repo then counts the Hub's requests only",
    )
    ap.add_argument(
        "--trace",
        type=Path,
        default=None,
        help="write every request of each run (method, path, status, Range) to TRACE-<code>-<run>.tsv",
    )
    ap.add_argument(
        "--identical-pairs",
        action="store_true",
        help="the corpus before 2026-12-08: one fixed disguise, so the two copies of each upstream are byte-identical "
        "(a kept whole file then serves the second); by default each copy is disguised its own way",
    )
    ap.add_argument(
        "--hidden",
        type=int,
        default=64,
        help="every model's width (64: a 215 KB file; 576, SmolLM2-135M's: its 96 head rows are over the usual "
        "64 KB first read)",
    )
    ap.add_argument(
        "--vocab", type=int, default=512, help="every model's vocabulary (more than --hidden for a verdict)"
    )
    add_old_argument(ap)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="originscan-sweep-"))
    try:
        root = tmp / "hub"
        t0 = time.perf_counter()
        generate(
            root,
            args.repos,
            args.upstreams,
            distinct_copies=not args.identical_pairs,
            hidden=args.hidden,
            vocab=args.vocab,
        )
        weights = sum(p.stat().st_size for p in (root / "benchorg").glob("*/model.safetensors"))
        print(
            f"{args.repos} repos of hidden {args.hidden}, vocabulary {args.vocab} ({weights / 1e6:.0f} MB of weights), {args.upstreams} upstreams registered, "
            f"{args.workers} workers, {'byte-identical pairs of' if args.identical_pairs else 'distinct'} disguised "
            f"copies (ready in {time.perf_counter() - t0:.0f} s)"
        )
        findings: dict[str, set[tuple[str, str, float | None]]] = {}
        per_repo: dict[str, dict[str, set[tuple[str, float | None]]]] = {}
        breakdown: dict[str, str] = {}
        rows = []
        with HubServer(root) as hub:
            hub.cdn = args.cdn
            for repo in hub.repo_ids():  # the server hashes every file once: its cost, not the client's
                hub.commit(hub.repo(repo))
            for code in sides(args.old):
                if args.only not in (None, code.label):
                    continue
                cache = Path(tempfile.mkdtemp(dir=tmp))
                env = {
                    "HF_ENDPOINT": hub.url,
                    "HF_HOME": str(cache / "hf_home"),
                    "HF_HUB_DISABLE_TELEMETRY": "1",
                    "ORIGINSCAN_CACHE": str(cache),
                }
                index = str(cache / "index.sqlite")
                for j in range(args.upstreams):
                    out = code.cli("index", "add", f"hf:upstreams/base-{j}", "--index", index, **env)
                    if out.returncode != 0:
                        raise SystemExit(f"{code.label}: index add failed: {out.stderr.strip()[-300:]}")
                for run in ("cold", "warm"):  # warm: the same sweep again, nothing changed (cache and index kept)
                    key = f"{code.label} {run}"
                    report = cache / f"sweep-{run}.json"
                    hub.stats.reset()
                    t = time.perf_counter()
                    before = resource.getrusage(resource.RUSAGE_CHILDREN)
                    out = code.cli(
                        "sweep", "hf:benchorg", "--workers", str(args.workers), "--quiet", "--format", "json",
                        "-o", str(report), "--index", index, timeout=3600, **env,
                    )  # fmt: skip
                    wall = time.perf_counter() - t
                    after = resource.getrusage(resource.RUSAGE_CHILDREN)
                    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
                    if out.returncode not in (0, 1):
                        raise SystemExit(f"{key}: sweep failed ({out.returncode}): {out.stderr.strip()[-300:]}")
                    targets = json.loads(report.read_text())["targets"]
                    findings[key] = {
                        (t["target"], f["rule"], (f.get("evidence") or {}).get("p_value"))
                        for t in targets
                        for f in t["findings"]
                    }
                    per_repo[key] = {
                        t["target"]: {(f["rule"], (f.get("evidence") or {}).get("p_value")) for f in t["findings"]}
                        for t in targets
                    }
                    s = hub.stats
                    if args.trace is not None:
                        write_trace(args.trace, key, s)
                    weight_requests = sum(1 for p in s.paths("GET") if p.endswith(".safetensors"))
                    cdn = sum(1 for p in s.paths() if p.startswith("/cdn/"))
                    kinds = Counter(request_kind(p) for p in s.paths())
                    breakdown[key] = (
                        f"{s.requests} requests for {len(targets)} repos: "
                        + ", ".join(f"{k} {n} ({n / len(targets):.3f}/repo)" for k, n in sorted(kinds.items()))
                        + f"\n  beyond info, card and one weight read per repo: {beyond_three(s.log)}"
                    )
                    rules = Counter(rule for _, rule, _ in findings[key] if rule.startswith("weights."))
                    rows.append(
                        f"{key:9} {wall:>7.1f} {cpu:>7.1f} {len(targets):>6} {(s.requests - cdn) / len(targets):>9.3f} "
                        f"{cdn / len(targets):>8.3f} {weight_requests / len(targets):>13.3f} {s.weight_bytes_served:>13,} "
                        f"{100 * s.weight_bytes_served / weights:>7.1f}% {dict(sorted(rules.items()))}"
                    )
        print(f"machine: {machine_load()}")
        print(
            f"{'code run':9} {'wall s':>7} {'CPU s':>7} {'repos':>6} {'req/repo':>9} {'CDN/repo':>8} {'weight req/repo':>13} {'weight bytes':>13} "
            f"{'share':>8} weights.* findings"
        )
        for row in rows:
            print(row)
        for label, text in breakdown.items():
            print(f"{label}: {text}")
        failed = False
        pairs = [("old cold", "new cold"), ("old cold", "old warm"), ("new cold", "new warm")]
        for a, b in [(a, b) for a, b in pairs if a in per_repo and b in per_repo]:
            only_a, only_b = findings[a] - findings[b], findings[b] - findings[a]
            repos = sorted(set(per_repo[a]) | set(per_repo[b]))
            same = sum(per_repo[a].get(r) == per_repo[b].get(r) for r in repos)
            print(
                f"findings per repo (every rule and p-value), {a} vs {b}: {same} of {len(repos)} repos the same "
                f"({len(findings[a])} and {len(findings[b])} findings; only {a}: {sorted(only_a)[:5]}, "
                f"only {b}: {sorted(only_b)[:5]})"
            )
            failed |= bool(only_a or only_b) or same != len(repos)
        return 1 if failed else 0
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
