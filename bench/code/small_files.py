"""The small-file rule against code it has never seen: every small Python file (at most SMALL_FILE_STATEMENTS
statements) of the packages installed beside this interpreter, matched by its rare settings and imports against
every file of every OTHER package. Files whose first lines say a tool wrote them (protoc's `DO NOT EDIT`) are not
judged, as in the scanner. Each hit is printed for reading by hand: packages by one author or one project, files
from one template (meson's `__config__.py`) and files adapted from another package are real shared code; the rest
are false positives of the rule.

    .venv/bin/python bench/code/small_files.py [site-packages folder]
"""

from __future__ import annotations

import ast
import sys
import sysconfig
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from scanner.provenance import code  # noqa: E402


def main() -> None:
    site = Path(sys.argv[1] if len(sys.argv) > 1 else sysconfig.get_paths()["purelib"])
    files: dict[Path, tuple[str, tuple[code.Feature, ...], int]] = {}
    for f in sorted(site.rglob("*.py")):
        rel = f.relative_to(site)
        if "_vendor" in rel.parts or rel.parts[0] in ("pip", "setuptools"):  # vendored copies of other packages
            continue
        try:
            text = f.read_text(encoding="utf-8")
            tree = ast.parse(text)
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        body = [s for s in tree.body if not isinstance(s, (ast.Import, ast.ImportFrom))]
        size = code._count(body) if not code.is_generated(text) else code.SMALL_FILE_STATEMENTS + 1  # never judged
        files[rel] = (rel.parts[0].split("-")[0], code.features(tree), size)
    holders: dict[str, set[Path]] = defaultdict(set)
    for rel, (_, feats, _) in files.items():
        for x in feats:
            holders[x.key].add(rel)
    small = [rel for rel, (_, feats, n) in files.items() if n <= code.SMALL_FILE_STATEMENTS and feats]
    hits = compared = 0
    for rel in small:
        package, feats, _ = files[rel]
        by_key = {x.key: x for x in feats}
        weights = {k: code.rarity(k) for k in by_key}
        total = sum(code._one_per_decision(by_key, weights).values())
        others: Counter[Path] = Counter()
        for k in by_key:
            others.update(g for g in holders[k] if files[g][0] != package)
        for other in others:
            compared += 1
            theirs = {x.key for x in files[other][1]}
            shared = code._one_per_decision({k: v for k, v in by_key.items() if k in theirs}, weights)
            score = sum(shared.values())
            if score >= code.MIN_RARE_EVIDENCE and score >= code.RARE_SHARE * total:
                hits += 1
                print(f"{score:5.1f}/{total:5.1f}  {rel}  ~  {other}: {'; '.join(k[:50] for k in shared)}")
    print(
        f"{len(files)} files in {len({p for p, _, _ in files.values()})} packages; {len(small)} small files with "
        f"features; {compared} small-file/other-package file pairs sharing a feature; {hits} called copies"
    )


if __name__ == "__main__":
    main()
