"""How scanner/provenance/code.py's thresholds were chosen: a grid over the matcher's parameters, scored on the
TUNING half of the real pairs only (the held-out half is never read here).

    .venv/bin/python bench/code/tune.py            (the definition matcher's grid)
    .venv/bin/python bench/code/tune.py --small    (the small-file rule: every tuning file's rare shared features)
    .venv/bin/python bench/code/tune.py --skeleton (the skeleton rule: every small tuning file's shared skeleton)
    .venv/bin/python bench/code/tune.py --kept     (the kept-code rule: every small tuning file's kept definitions)

For each setting: the weakest tuning copy and the strongest tuning independent pair, in copied statements (the
file-level score), and how many tuning copies clear the strongest independent pair. The setting kept is the one
with the widest gap between the copies found and the independent pairs, the file threshold sitting in that gap.
The later thresholds (CORE_TOKENS for a kept core, MIN_SHARED_PROSE for kept comment and docstring lines) were read
off `run.py --half tuning`, which prints every named threshold beside the strongest tuning independent pair.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))

from real_pairs import cached_path, load_pairs, missing  # noqa: E402
from run import selected  # noqa: E402  (the tuning half, blind batches left out)

from scanner.provenance import code  # noqa: E402

GRID = {
    "MIN_TILE": (8, 10, 12, 14, 16),
    "DEF_CONTAINMENT": (0.5, 0.6, 0.7, 0.8),
    "MIN_DEF_TOKENS": (40, 60, 80, 100, 120),
}


def small_files() -> None:
    """Each tuning suspect file's rare evidence against its reference (summed rarity of the shared settings and
    imports, and its share of the file's own), largest files first: MIN_RARE_EVIDENCE and RARE_SHARE are read off
    the files of at most SMALL_FILE_STATEMENTS statements."""
    usable = [p for p in selected(load_pairs(), "tuning") if not missing([p])]
    rows = []
    for p in usable:
        upstream = code.UpstreamCode(
            {"r": [code.fingerprint(r.path, cached_path(r).read_text(encoding="utf-8")) for r in p.reference]}
        )
        for r in p.suspect:
            fp = code.fingerprint(r.path, cached_path(r).read_text(encoding="utf-8"))
            shared, _ = code.small_file_evidence(fp, {k: f.features for k, f in upstream.files.items()}).get(
                "r", ((), False)
            )
            score = sum(f.rarity for f in shared)
            total = sum(code.rarity(f.key) for f in fp.features)
            rows.append((fp.statements, p.label, score, score / total if total else 0.0, p.id, shared))
    print(f"{'stmts':>5} {'label':<11} {'evidence':>8} {'share':>5}  pair: shared features (rarity)")
    for stmts, label, score, share, pid, shared in sorted(rows, key=lambda r: -r[0]):
        mark = "*" if stmts <= code.SMALL_FILE_STATEMENTS else " "
        feats = ", ".join(f"{f.key[:40]} ({f.rarity:.1f})" for f in shared[:4])
        print(f"{stmts:>5}{mark}{label:<11} {score:>8.1f} {share:>5.0%}  {pid}: {feats}")
    small = [r for r in rows if r[0] <= code.SMALL_FILE_STATEMENTS]
    indep = max((r[2] for r in small if r[1] == "independent"), default=0.0)
    copies = [r[2] for r in small if r[1] == "copied"]
    print(f"* small files: strongest independent {indep:.1f}, copies {sorted(copies)}")


def skeletons() -> None:
    """Each small tuning suspect file's skeleton evidence against its reference (summed rarity of the shared rare
    items, their share of the file's own, the parts they lie in): SKELETON_EVIDENCE, SKELETON_SHARE and
    SKELETON_PARTS are read off these beside bench/code/skeleton_null.py's nulls."""
    usable = [p for p in selected(load_pairs(), "tuning") if not missing([p])]
    rows = []
    for p in usable:
        reference = [code.fingerprint(r.path, cached_path(r).read_text(encoding="utf-8")) for r in p.reference]
        files = {("r", fp.path): fp.skeleton for fp in reference}
        for r in p.suspect:
            fp = code.fingerprint(r.path, cached_path(r).read_text(encoding="utf-8"))
            if fp.statements > code.SMALL_FILE_STATEMENTS or fp.generated:
                continue
            shared, copied = code.skeleton_evidence(fp, files).get("r", ((), False))
            score = sum(f.rarity for f in shared)
            total = sum(w for w, _ in code.skeleton_weights(fp.skeleton).values())
            spread = len({code.skeleton_part(code._parts(fp), f.suspect_line) for f in shared})
            rows.append((p.label, score, score / total if total else 0.0, spread, copied, p.id, fp.statements))
    print(f"{'label':<11} {'stmts':>5} {'evidence':>8} {'share':>5} {'parts':>5} fires  pair")
    for label, score, share, spread, copied, pid, stmts in sorted(rows, key=lambda r: (r[0], -r[1])):
        print(f"{label:<11} {stmts:>5} {score:>8.1f} {share:>5.0%} {spread:>5} {'yes' if copied else '-':<5}  {pid}")


def kept() -> None:
    """Each small tuning suspect file's kept code against its reference (`code.kept_code`): the tokens of its
    counting definitions (`KeptDefinition.counts`) from the best reference file, beside each definition's kept/own
    tokens. KEPT_TOKENS is read off these beside bench/code/skeleton_null.py --kept's nulls."""
    rows = []
    for p in [p for p in selected(load_pairs(), "tuning") if not missing([p])]:
        reference = [code.fingerprint(r.path, cached_path(r).read_text(encoding="utf-8")) for r in p.reference]
        upstream = code.UpstreamCode({"r": reference})
        for r in p.suspect:
            fp = code.fingerprint(r.path, cached_path(r).read_text(encoding="utf-8"))
            if fp.statements > code.SMALL_FILE_STATEMENTS or fp.generated:
                continue
            found = code.kept_code(fp, upstream.runs, upstream.stock_positions)
            best = max(found.values(), key=lambda ds: sum(k.kept_tokens for k in ds if k.counts), default=())
            summed = sum(k.kept_tokens for k in best if k.counts)
            detail = "; ".join(f"{k.name} {k.kept_tokens}/{k.own_tokens}" for k in best)
            rows.append((p.label, summed, p.id, detail))
    print(f"{'label':<11} {'summed':>6}  pair: each definition's kept/own tokens (KEPT_TOKENS {code.KEPT_TOKENS})")
    for label, summed, pid, detail in sorted(rows, key=lambda r: (r[0], -r[1])):
        print(f"{label:<11} {summed:>6}  {pid}: {detail}")


def main() -> None:
    if "--kept" in sys.argv:
        kept()
        return
    if "--small" in sys.argv:
        small_files()
        return
    if "--skeleton" in sys.argv:
        skeletons()
        return
    pairs = selected(load_pairs(), "tuning")
    usable = [p for p in pairs if not missing([p])]
    print(f"tuning half: {len(pairs)} pairs, {len(usable)} in the cache")
    fps = {
        p.id: (
            [code.fingerprint(r.path, cached_path(r).read_text(encoding="utf-8")) for r in p.suspect],
            [code.fingerprint(r.path, cached_path(r).read_text(encoding="utf-8")) for r in p.reference],
        )
        for p in usable
    }
    print(
        f"{'tile':>4} {'cont':>5} {'toks':>4} {'weakest copy':>12} {'strongest indep':>15} {'copies above':>12}  strongest"
    )
    for tile in GRID["MIN_TILE"]:
        code.MIN_TILE = tile  # the stretches index depends on the tile length only
        indexed = {p.id: code.UpstreamCode({"r": fps[p.id][1]}) for p in usable}
        for cont, toks in itertools.product(GRID["DEF_CONTAINMENT"], GRID["MIN_DEF_TOKENS"]):
            code.DEF_CONTAINMENT, code.MIN_DEF_TOKENS = cont, toks
            copies, indep = [], []
            for p in usable:
                found = [m for fp in fps[p.id][0] for m in code.matches(fp, indexed[p.id], copied_only=False)]
                score = max((m.copied_statements for m in found), default=0.0)
                (copies if p.copied else indep).append((score, p.id))
            worst = max(indep) if indep else (0.0, "")
            above = [s for s, _ in copies if s > worst[0]]
            weakest = min(above) if above else 0.0
            print(
                f"{tile:>4} {cont:>5} {toks:>4} {weakest:>12.1f} {worst[0]:>15.1f} {len(above):>6}/{len(copies)}  "
                f"{worst[1]}"
            )


if __name__ == "__main__":
    main()
