"""Builds rules/code_background.json, the background that scanner/provenance/code.py weighs a small file's shared
settings and imports against (inverse document frequency): in how many model directories of a `transformers`
wheel each feature occurs, for the features found in two or more.

    .venv/bin/python bench/code/background.py     (downloads the wheel into bench/.cache/code if it is not there)

The background is independent code by many authors in one style: a setting every model sets (`initializer_range
= 0.02`, `hidden_act = 'gelu'`) weighs next to nothing, one no model sets (`query_num = 64`) weighs most. Files
generated from modular files (marked in their first lines) repeat other directories' code and are left out.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from run import CACHE, wheel_models  # noqa: E402

from scanner.provenance import code  # noqa: E402

OUT = ROOT / "rules" / "code_background.json"
STOCK_DIRECTORIES = 5  # a stretch in this many directories' hand-written modeling_*.py is the team's template
RUN_DIRECTORIES = 5  # a KEPT_RUN-token window in this many directories' hand-written files is an idiom (kept-code rule)


def main() -> None:
    models = wheel_models()
    wheel = sorted(CACHE.glob("transformers-*.whl"))[-1].name
    df: Counter[str] = Counter()
    stretches: Counter[str] = Counter()
    windows: Counter[str] = Counter()
    directories = 0
    for d in sorted(p for p in models.iterdir() if p.is_dir()):
        keys: set[str] = set()
        held: set[str] = set()
        runs: set[str] = set()
        for f in sorted(d.glob("*.py")):
            text = f.read_text(encoding="utf-8")
            if "This file was automatically generated from" in text[:2000]:
                continue
            fp = code.fingerprint(f.name, text)
            keys.update(x.key for x in (*fp.features, *fp.prose, *fp.skeleton))  # settings, imports, prose, skeleton
            for defn in fp.definitions:  # every file's windows: configs and processors repeat their templates too
                runs.update(code.window_hashes(defn.tokens))
            for defn in fp.definitions if f.name.startswith("modeling_") else ():
                t = defn.tokens
                n = code.STOCK_TILE
                held.update(code.stretch_hash(t[i : i + n]) for i in range(len(t) - n + 1))
        directories += 1
        df.update(keys)
        stretches.update(held)
        windows.update(runs)
    kept = dict(sorted((code.feature_hash(k), n) for k, n in df.items() if n >= 2))
    OUT.write_text(
        json.dumps(
            {
                "about": "Inverse-document-frequency background for scanner/provenance/code.py's small-file rule: "
                "the number of model directories of the transformers wheel named in `source` whose hand-written "
                "Python files (modular-generated ones left out) hold each literal setting, import, prose line or skeleton item "
                "(statement, class header, signature), keyed by "
                "code.feature_hash; only those in two or more. `stock`: the hashes (code.stretch_hash, 12 hex digits each, concatenated) of "
                "the normalised stretches of code.STOCK_TILE tokens found in `stock_directories` or more directories. "
                "`runs`: the same for the code.KEPT_RUN-token windows of all hand-written files found in "
                "`run_directories` or more directories (the kept-code rule's idioms). "
                "Built by bench/code/background.py.",
                "source": f"https://pypi.org/project/transformers/ ({wheel}), transformers/models/*/",
                "directories": directories,
                "features": kept,
                "stock_directories": STOCK_DIRECTORIES,
                "stock": "".join(sorted(h for h, n in stretches.items() if n >= STOCK_DIRECTORIES)),
                "run_tokens": code.KEPT_RUN,
                "run_directories": RUN_DIRECTORIES,
                "runs": "".join(sorted(h for h, n in windows.items() if n >= RUN_DIRECTORIES)),
            },
            indent=0,
            ensure_ascii=False,
        )
        + "\n",
        encoding="utf-8",
    )
    stock = sum(n >= STOCK_DIRECTORIES for n in stretches.values())
    idioms = sum(n >= RUN_DIRECTORIES for n in windows.values())
    print(
        f"{OUT.relative_to(ROOT)}: {directories} directories, {len(kept)} features in two or more ({len(df)} in "
        f"all), {stock} stretches in {STOCK_DIRECTORIES} or more, {idioms} windows of {code.KEPT_RUN} tokens in "
        f"{RUN_DIRECTORIES} or more"
    )


if __name__ == "__main__":
    main()
