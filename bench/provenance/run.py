#!/usr/bin/env python
"""Score originscan's provenance engine and three full-read baselines on the benchmark corpus.

    .venv/bin/python bench/provenance/run.py [--manifest bench/.corpus/manifest.json] [--limit N] [--only CLASS]
                                             [--methods originscan,sha256,param_cos,std_corr] [--save FILE]

Needs numpy only (no torch): run it with the project's virtualenv so that ``scanner`` imports.  Build the corpus
first with bench/provenance/make_corpus.py.

Pairs (suspect, reference), within one architecture group of the manifest:
* derived:     every derivative vs each base it was derived from (both bases for a merge);
* independent: base vs every other base of the group (each unordered pair once), and every derivative vs every base
               it was NOT derived from.

Per class of derivative, for each method: recall at zero false positives (threshold = the method's maximum score
over ALL independent pairs, a derived pair counts only when strictly above it), the smallest margin (min derived
score - max independent score; > 0 means separable), mean bytes read / weight bytes of the two models, and mean
seconds per pair.  For originscan also its own verdicts: a derived pair is caught only when verdict == "derived",
and a false positive is any independent pair with verdict == "derived".
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

import baselines  # noqa: E402

METHODS = ["originscan", "sha256", "param_cos", "std_corr"]


def load_manifest(path: Path) -> list[dict]:
    m = json.loads(path.read_text())
    root = path.parent
    models = m["models"] if isinstance(m, dict) else m
    for e in models:
        e["abspath"] = str((root / e["path"]).resolve())
        b = e.get("base")
        e["bases"] = [] if b is None else ([b] if isinstance(b, str) else list(b))
        e.setdefault("group", "default")
    return models


def form_pairs(models: list[dict]) -> list[dict]:
    pairs = []
    by_group: dict[str, list[dict]] = defaultdict(list)
    for e in models:
        by_group[e["group"]].append(e)
    for group, ms in by_group.items():
        bases = [e for e in ms if e["class"] == "base"]
        for i, a in enumerate(bases):
            for b in bases[i + 1 :]:
                pairs.append(dict(suspect=a, reference=b, derived=False, cls="base", group=group))
        for d in ms:
            if d["class"] == "base":
                continue
            for b in bases:
                pairs.append(dict(suspect=d, reference=b, derived=b["name"] in d["bases"], cls=d["class"], group=group))
    return pairs


def select(pairs: list[dict], only: str | None, limit: int | None) -> list[dict]:
    if only:
        pairs = [p for p in pairs if p["cls"] == only or p["cls"] == "base"]
        if not any(p["derived"] for p in pairs):
            raise SystemExit(f"no derived pairs of class {only!r}")
    if limit:
        seen: dict[tuple, int] = defaultdict(int)
        kept = []
        for p in pairs:
            key = (p["cls"], p["derived"])
            if seen[key] < limit:
                seen[key] += 1
                kept.append(p)
        pairs = kept
    return pairs


def originscan_method():
    try:
        from scanner.provenance.compare import compare_paths
    except Exception as exc:  # noqa: BLE001 - report any import problem, run the baselines anyway
        print(
            f"NOTE: originscan skipped: cannot import scanner.provenance.compare.compare_paths "
            f"({type(exc).__name__}: {exc})",
            file=sys.stderr,
        )
        return None

    def run(suspect, reference):
        v = compare_paths(suspect, reference)
        return dict(
            score=float(v.score),
            bytes_read=int(v.bytes_read),
            weight_bytes=int(v.weight_bytes),
            verdict=str(v.verdict),
            p_value=getattr(v, "p_value", None),
        )

    return run


def baseline_method(fn):
    def run(suspect, reference):
        r = fn(suspect, reference)
        return dict(score=r.score, bytes_read=r.bytes_read, weight_bytes=r.weight_bytes)

    return run


def run_all(pairs: list[dict], methods: dict, verbose: bool) -> list[dict]:
    rows = []
    n = len(pairs)
    for k, p in enumerate(pairs):
        row = dict(
            suspect=p["suspect"]["name"],
            reference=p["reference"]["name"],
            cls=p["cls"],
            group=p["group"],
            derived=p["derived"],
            results={},
        )
        for name, fn in methods.items():
            t = time.perf_counter()
            try:
                r = fn(p["suspect"]["abspath"], p["reference"]["abspath"])
            except Exception as exc:  # noqa: BLE001 - an engine crash is a result too
                r = dict(
                    error=f"{type(exc).__name__}: {exc}",
                    score=float("nan"),
                    bytes_read=0,
                    weight_bytes=0,
                    verdict="error",
                )
                if verbose:
                    traceback.print_exc()
            r["seconds"] = time.perf_counter() - t
            row["results"][name] = r
        rows.append(row)
        if verbose or (k + 1) % 25 == 0 or k + 1 == n:
            summary = " ".join(
                f"{m}={r['score']:.3f}" + (f"/{r['verdict']}" if "verdict" in r else "")
                for m, r in row["results"].items()
            )
            print(
                f"[{k + 1}/{n}] {row['suspect']} vs {row['reference']} "
                f"({'derived' if row['derived'] else 'independent'}) {summary}",
                file=sys.stderr,
                flush=True,
            )
    return rows


def _fmt_pct(x):
    return "    -" if x is None else f"{100 * x:6.1f}%"


def _fmt_bytes(x):
    if x is None:
        return "      -"
    return f"{100 * x:7.3f}%" if x < 0.1 else f"{100 * x:7.1f}%"


def report(rows: list[dict], methods: list[str], scope: str = "global") -> str:
    out = []
    indep = [r for r in rows if not r["derived"]]
    der = [r for r in rows if r["derived"]]
    groups = sorted({r["group"] for r in rows})

    def max_indep(m, group=None):
        s = [r["results"][m]["score"] for r in indep if group is None or r["group"] == group]
        s = [x for x in s if x == x]
        return max(s) if s else float("-inf")

    # thr[(method, group)]: zero-FP threshold used for pairs of that group
    thr = {(m, g): max_indep(m, None if scope == "global" else g) for m in methods for g in groups}

    def above(r, m):
        s = r["results"][m]["score"]
        return s == s and s > thr[(m, r["group"])]

    per_group = defaultdict(int)
    for r in rows:
        per_group[r["group"]] += 1
    out.append(
        f"pairs: {len(der)} derived, {len(indep)} independent ("
        + ", ".join(f"{g}: {n}" for g, n in sorted(per_group.items()))
        + ")"
    )
    out.append(
        f"zero-FP threshold per method = max score over {'ALL independent pairs' if scope == 'global' else 'the independent pairs of the same group'}"
        "; a derived pair counts only when strictly above:"
    )
    for m in methods:
        if scope == "global":
            out.append(f"  {m:<11} {thr[(m, groups[0])]:.6g}")
        else:
            out.append(f"  {m:<11} " + ", ".join(f"{g}: {thr[(m, g)]:.6g}" for g in groups))
    if "originscan" in methods:
        fp = [r for r in indep if r["results"]["originscan"].get("verdict") == "derived"]
        err = [r for r in rows if r["results"]["originscan"].get("verdict") == "error"]
        inc = [r for r in indep if r["results"]["originscan"].get("verdict") == "inconclusive"]
        out.append(
            f"originscan verdicts on independent pairs: {len(fp)} false positives (verdict 'derived'), "
            f"{len(inc)} inconclusive; {len(err)} pairs raised an error"
        )
        for r in fp[:20]:
            out.append(
                f"  FALSE POSITIVE: {r['suspect']} vs {r['reference']} score {r['results']['originscan']['score']:.4g}"
            )
        for r in err[:10]:
            out.append(f"  ERROR: {r['suspect']} vs {r['reference']}: {r['results']['originscan'].get('error')}")
    out.append("")

    def block(title, sel, derived):
        out.append(title)
        hdr = f"  {'method':<11} {'recall@0FP':>10} {'min margin':>11} {'bytes/weights':>13} {'s/pair':>8}"
        if "originscan" in methods:
            hdr += f" {'verdict: derived / inconcl. / indep.':>38}"
        out.append(hdr)
        for m in methods:
            res = [r["results"][m] for r in sel]
            sc = [x["score"] for x in res]
            ok = [s for s in sc if s == s]
            fr = [x["bytes_read"] / x["weight_bytes"] for x in res if x.get("weight_bytes")]
            secs = sum(x["seconds"] for x in res) / len(res)
            if derived:
                rec = sum(above(r, m) for r in sel) / len(sel)
                margin = min(
                    (
                        r["results"][m]["score"] - thr[(m, r["group"])]
                        for r in sel
                        if r["results"][m]["score"] == r["results"][m]["score"]
                    ),
                    default=float("nan"),
                )
                line = f"  {m:<11} {_fmt_pct(rec):>10} {margin:>+11.4f}"
            else:
                line = f"  {m:<11} {'max ' + format(max(ok) if ok else float('nan'), '.4f'):>10} {'':>11}"
            line += f" {_fmt_bytes(sum(fr) / len(fr) if fr else None):>13} {secs:>8.3f}"
            if m == "originscan":
                v = [x.get("verdict") for x in res]
                line += (
                    f"   {v.count('derived'):>3} / {v.count('inconclusive'):>3} / {v.count('independent'):>3}"
                    + (f" ({v.count('error')} errors)" if "error" in v else "")
                    + (
                        f"  verdict recall {_fmt_pct(v.count('derived') / len(v))}"
                        if derived
                        else f"  FP {v.count('derived')}"
                    )
                )
            out.append(line)
        out.append("")

    classes = sorted({r["cls"] for r in der}, key=lambda c: (c.startswith("minilm/"), c))
    for c in classes:
        sel = [r for r in der if r["cls"] == c]
        wb = sum(r["results"][methods[0]].get("weight_bytes", 0) for r in sel) / len(sel) / 2
        out.append("")
        block(f"== {c}: {len(sel)} derived pairs (~{wb / 1e6:.1f} MB weights per model)", sel, True)
    for g in sorted({r["group"] for r in indep}):
        sel = [r for r in indep if r["group"] == g]
        block(f"== independent pairs, group {g}: {len(sel)} pairs", sel, False)

    # compact summary
    out.append(
        "summary: recall at zero false positives (score threshold)"
        + ("; originscan column 'verdict' = share of pairs with verdict 'derived'" if "originscan" in methods else "")
    )
    cols = methods + (["verdict"] if "originscan" in methods else [])
    out.append(f"  {'class':<44}" + "".join(f"{c:>11}" for c in cols))
    for c in classes + ["ALL"]:
        sel = der if c == "ALL" else [r for r in der if r["cls"] == c]
        line = f"  {c:<44}"
        for m in methods:
            line += f"{_fmt_pct(sum(above(r, m) for r in sel) / len(sel)):>11}"
        if "originscan" in methods:
            line += (
                f"{_fmt_pct(sum(r['results']['originscan'].get('verdict') == 'derived' for r in sel) / len(sel)):>11}"
            )
        out.append(line)
    if "originscan" in methods:
        fpn = sum(r["results"]["originscan"].get("verdict") == "derived" for r in indep)
        out.append(f"  {'independent pairs with verdict derived (FP)':<44}{'':>{11 * len(methods)}}{fpn:>11}")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", type=Path, default=REPO / "bench" / ".corpus" / "manifest.json")
    ap.add_argument(
        "--limit", type=int, default=None, help="at most N derived and N independent pairs per class (quick runs)"
    )
    ap.add_argument("--only", default=None, help="one derivative class (plus base-vs-base pairs)")
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of " + ",".join(METHODS))
    ap.add_argument("--group", default=None, help="only this architecture group (llama-tiny, minilm)")
    ap.add_argument(
        "--save",
        type=Path,
        default=REPO / "bench" / ".cache" / "provenance_results.json",
        help="raw per-pair results (JSON)",
    )
    ap.add_argument(
        "--threshold-scope",
        choices=["global", "group"],
        default="global",
        help="zero-FP threshold from all independent pairs (default) or per architecture group",
    )
    ap.add_argument(
        "--from-results",
        type=Path,
        default=None,
        help="re-print the tables from a saved results file instead of running",
    )
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    if a.from_results:
        rows = json.loads(a.from_results.read_text())["rows"]
        ms = [m for m in METHODS if all(m in r["results"] for r in rows)]
        print(report(rows, ms, a.threshold_scope))
        return
    if not a.manifest.exists():
        raise SystemExit(
            f"no manifest at {a.manifest}: build the corpus first "
            f"(bench/.venv-bench/bin/python bench/provenance/make_corpus.py)"
        )
    models = load_manifest(a.manifest)
    pairs = form_pairs(models)
    if a.group:
        pairs = [p for p in pairs if p["group"] == a.group]
    pairs = select(pairs, a.only, a.limit)
    wanted = [m.strip() for m in a.methods.split(",") if m.strip()]
    bad = [m for m in wanted if m not in METHODS]
    if bad:
        raise SystemExit(f"unknown method(s): {', '.join(bad)}")
    methods = {}
    for m in wanted:
        if m == "originscan":
            fn = originscan_method()
            if fn is not None:
                methods[m] = fn
        else:
            methods[m] = baseline_method(baselines.BASELINES[m])
    if not methods:
        raise SystemExit("no method to run")
    print(f"{len(pairs)} pairs, methods: {', '.join(methods)}", file=sys.stderr)
    t = time.time()
    rows = run_all(pairs, methods, a.verbose)
    text = report(rows, list(methods), a.threshold_scope)
    print(text)
    print(f"\n(total {time.time() - t:.0f}s)")
    if a.save:
        a.save.parent.mkdir(parents=True, exist_ok=True)
        a.save.write_text(json.dumps({"manifest": str(a.manifest), "rows": rows}, indent=1, default=str))
        print(f"raw results: {a.save}", file=sys.stderr)


if __name__ == "__main__":
    main()
