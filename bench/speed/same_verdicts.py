"""Old code and new give the same judgement on every provenance fixture pair: verdict, p-value, score, evidence.

    .venv/bin/python bench/speed/same_verdicts.py [--old PATH]

The pairs are those of tests/test_provenance_fixtures.py (every transform class against its base, every pair of
independent models), compared with `compare_paths` in one process per code version. Everything a verdict holds is
compared except `seconds`; `bytes_read` is reported apart (reading more or fewer bytes is not a different
judgement). Exits 1 when any judgement differs, so it can gate a change.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "bench" / "speed")]

from common import add_old_argument, sides  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "provenance"

RUN_ALL = """
import json, sys
from pathlib import Path
from scanner.provenance.compare import compare_paths
root = Path(sys.argv[1])
out = []
for suspect, reference in json.loads(sys.argv[2]):
    out.append(compare_paths(root / suspect, root / reference).to_json())
print(json.dumps(out))
"""


def fixture_pairs(manifest: dict | None = None) -> list[tuple[str, str]]:
    """The derived and independent pairs the fixture test compares (same rule as tests/test_provenance_fixtures);
    bench/refactor/same_outputs.py takes its pairs from here too."""
    models = (manifest or json.loads((FIXTURES / "manifest.json").read_text()))["models"]
    bases = [m["name"] for m in models if m["base"] is None]

    def parents(m: dict) -> list[str]:
        return m["base"] if isinstance(m["base"], list) else [m["base"]] if m["base"] else []

    derived = [(m["name"], p) for m in models for p in parents(m)]
    independent = [
        (m["name"], b)
        for m in models
        for b in bases
        if b != m["name"]
        and b not in parents(m)
        and not (m["base"] is None and bases.index(b) < bases.index(m["name"]))
    ]
    return derived + independent


def main() -> int:
    ap = argparse.ArgumentParser()
    add_old_argument(ap)
    args = ap.parse_args()
    pairs = fixture_pairs()
    verdicts = {}
    for code in sides(args.old):
        proc = subprocess.run(
            [sys.executable, "-c", RUN_ALL, str(FIXTURES), json.dumps(pairs)],
            capture_output=True,
            text=True,
            env=code.env(),
            cwd=code.tree,
            timeout=1800,
        )
        if proc.returncode:
            raise SystemExit(f"{code.label}: {proc.stderr[-800:]}")
        verdicts[code.label] = json.loads(proc.stdout)
    differ, byte_changes = 0, []
    for (suspect, reference), old, new in zip(pairs, verdicts["old"], verdicts["new"]):
        if old["bytes_read"] != new["bytes_read"]:
            byte_changes.append(f"{suspect}~{reference}: {old['bytes_read']:,} -> {new['bytes_read']:,}")
        a = {k: v for k, v in old.items() if k not in ("seconds", "bytes_read")}
        b = {k: v for k, v in new.items() if k not in ("seconds", "bytes_read")}
        if a != b:
            differ += 1
            changed = sorted(k for k in a if a[k] != b.get(k))
            print(
                f"DIFFERENT {suspect}~{reference}: {changed}: old {[a[k] for k in changed]} new {[b[k] for k in changed]}"
            )
    verdict_counts = {
        v: sum(x["verdict"] == v for x in verdicts["new"]) for v in ("derived", "independent", "inconclusive")
    }
    print(
        f"{len(pairs)} fixture pairs ({verdict_counts}): {len(pairs) - differ} same judgement, {differ} different; "
        f"bytes read changed in {len(byte_changes)}"
    )
    for line in byte_changes:
        print("  bytes", line)
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
