#!/usr/bin/env python
"""Every pair of the provenance benchmark compared by the code before the speed work and by today's, in the same
run: verdict, p-value (log10) and score must be identical; the residual-vector evidence is compared too.

    .venv/bin/python bench/provenance/before_after.py [--manifest tests/fixtures/provenance/manifest.json]

The default manifest is the committed fixture set; the full corpus (bench/.corpus/manifest.json) works the same.
Each code version runs in its own process (PYTHONPATH = its tree); timings are the sum of per-pair seconds.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path[:0] = [str(HERE), str(REPO / "bench")]

from baseline import both  # noqa: E402
from run import form_pairs, load_manifest  # noqa: E402

WORKER = r"""
import json, sys, time
from scanner.provenance.compare import compare_paths
out = []
for s, r in json.load(sys.stdin):
    t = time.perf_counter()
    v = compare_paths(s, r)
    evidence = v.to_json()["evidence"]  # the JSON contract: the same in every version, typed evidence or not
    out.append({"verdict": v.verdict, "p_value": v.p_value, "log10_p": v.log10_p_value, "score": v.score,
                "bytes_read": v.bytes_read, "seconds": time.perf_counter() - t,
                "vectors": [(e["suspect_tensor"], e["reference_tensor"], e["corr"]) for e in evidence
                            if e.get("kind") == "residual-vector"],
                "anchor": [e for e in evidence if e.get("kind") == "token-matrix"]})
json.dump(out, sys.stdout)
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--manifest", type=Path, default=REPO / "tests" / "fixtures" / "provenance" / "manifest.json")
    args = ap.parse_args()
    pairs = form_pairs(load_manifest(args.manifest))
    todo = [[p["suspect"]["abspath"], p["reference"]["abspath"]] for p in pairs]
    results = {}
    for code in both():
        proc = subprocess.run(
            [sys.executable, "-c", WORKER],
            input=json.dumps(todo),
            capture_output=True,
            text=True,
            env=code.env(ORIGINSCAN_CACHE="off"),
            cwd=code.tree,
            timeout=7200,
        )
        if proc.returncode != 0:
            raise SystemExit(f"{code.label}: {proc.stderr.strip()[-500:]}")
        results[code.label] = json.loads(proc.stdout)
    before, after = results["before"], results["after"]
    print(
        f"{len(pairs)} pairs from {args.manifest.relative_to(REPO) if args.manifest.is_relative_to(REPO) else args.manifest}"
    )
    print(
        f"{'suspect':26} {'reference':10} {'truth':8} | {'before: verdict':16} {'log10 p':>8} {'score':>6} | "
        f"{'after: verdict':16} {'log10 p':>8} {'score':>6} | same"
    )
    differ = 0
    vec_differ = 0
    for p, b, a in zip(pairs, before, after):
        same = (b["verdict"], b["p_value"], b["log10_p"], b["score"]) == (
            a["verdict"],
            a["p_value"],
            a["log10_p"],
            a["score"],
        )
        anchor_same = b["anchor"] == a["anchor"]
        vec_same = b["vectors"] == a["vectors"]
        differ += not (same and anchor_same)
        vec_differ += not vec_same
        print(
            f"{p['suspect']['name'][:26]:26} {p['reference']['name'][:10]:10} "
            f"{'derived' if p['derived'] else 'indep.':8} | {b['verdict']:16} {b['log10_p']:>8.2f} {b['score']:>6.3f} | "
            f"{a['verdict']:16} {a['log10_p']:>8.2f} {a['score']:>6.3f} | "
            f"{'yes' if same and anchor_same else 'NO'}{'' if vec_same else ' (vectors differ)'}"
        )
    tb, ta = sum(x["seconds"] for x in before), sum(x["seconds"] for x in after)
    bb, ba = sum(x["bytes_read"] for x in before), sum(x["bytes_read"] for x in after)
    print(
        f"\npairs whose verdict, p-value, score or anchor evidence differ: {differ} of {len(pairs)}; "
        f"residual-vector evidence differs on {vec_differ}"
    )
    print(
        f"compare seconds, all pairs: before {tb:.2f}, after {ta:.2f} ({tb / max(ta, 1e-9):.1f}x); "
        f"weight bytes read: before {bb:,}, after {ba:,}"
    )


if __name__ == "__main__":
    main()
