"""Builds rules/code_background.json, the background that scanner/provenance/code.py weighs a small file's shared
settings and imports against (inverse document frequency): in how many documents each feature occurs, for the
features found in two or more. A document is a model directory of a `transformers` wheel, or one module of the
hand-written training libraries of LIBRARIES (losses, metrics, optimisers, callbacks, data pipelines: the code
beside models that follows torch's interfaces).

    .venv/bin/python bench/code/background.py     (downloads the wheels into bench/.cache/code if they are not there)

The background is independent code by many authors in two styles: a setting every model sets (`initializer_range
= 0.02`, `hidden_act = 'gelu'`) or every loss (`reduction='mean'`) weighs next to nothing, one nobody sets
(`query_num = 64`) weighs most. Files generated from modular files (marked in their first lines) repeat other
directories' code and are left out, as are the libraries' tests. The template stock (`stock`) stays the
transformers modelling files' own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from collections import Counter
from collections.abc import Iterator
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
# Hand-written PyTorch training libraries by other teams, pinned (PyPI wheels), reserved for the background: no
# benchmark pair uses them as suspect or reference. catalyst 22.4 was meant to be one; its wheel's metadata is one
# that current pip refuses.
LIBRARIES = (
    ("pytorch-ignite", "0.5.5", "ignite"),
    ("fastai", "2.8.12", "fastai"),
    ("skorch", "1.4.0", "skorch"),
    ("torchdistill", "1.1.5", "torchdistill"),
    ("poutyne", "1.19.0", "poutyne"),
    ("pytorch-tabnet", "4.1.0", "pytorch_tabnet"),
)


def _wheel(package: str, version: str) -> Path:
    """The pinned release's wheel in the cache, downloaded when missing."""
    pattern = f"{package.replace('-', '_')}-{version}-*.whl"
    if not sorted(CACHE.glob(pattern)):
        CACHE.mkdir(parents=True, exist_ok=True)
        pin = f"{package}=={version}"
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", pin, "-d", str(CACHE)], check=True)
    return sorted(CACHE.glob(pattern))[-1]


def library_modules() -> Iterator[tuple[str, str]]:
    """(path, source) of every hand-written module of LIBRARIES, tests left out: each one document."""
    for package, version, top in LIBRARIES:
        with zipfile.ZipFile(_wheel(package, version)) as zf:
            for name in sorted(zf.namelist()):
                parts = name.split("/")
                if name.endswith(".py") and parts[0] == top and not {"tests", "test"} & set(parts):
                    yield name, zf.read(name).decode("utf-8", "replace")


def main() -> None:
    models = wheel_models()
    wheel = sorted(CACHE.glob("transformers-*.whl"))[-1].name
    df: Counter[str] = Counter()
    stretches: Counter[str] = Counter()
    windows: Counter[str] = Counter()
    directories = 0
    documents: list[list[tuple[str, str]]] = []  # each document's (name, source) files
    for d in sorted(p for p in models.iterdir() if p.is_dir()):
        documents.append([(f.name, f.read_text(encoding="utf-8")) for f in sorted(d.glob("*.py"))])
    documents.extend([module] for module in library_modules())
    for files in documents:
        keys: set[str] = set()
        held: set[str] = set()
        runs: set[str] = set()
        for name, text in files:
            if "This file was automatically generated from" in text[:2000] or code.is_generated(text):
                continue
            fp = code.fingerprint(name, text)
            keys.update(x.key for x in (*fp.features, *fp.prose, *fp.skeleton))  # settings, imports, prose, skeleton
            for defn in fp.definitions:  # every file's windows: configs and processors repeat their templates too
                runs.update(code.window_hashes(defn.tokens))
            for defn in fp.definitions if name.startswith("modeling_") else ():
                t = defn.tokens
                n = code.STOCK_TILE
                held.update(code.stretch_hash(t[i : i + n]) for i in range(len(t) - n + 1))
        if not keys and not runs:
            continue  # nothing hand-written in it (an empty `__init__.py`)
        directories += 1
        df.update(keys)
        stretches.update(held)
        windows.update(runs)
    kept = dict(sorted((code.feature_hash(k), n) for k, n in df.items() if n >= 2))
    OUT.write_text(
        json.dumps(
            {
                "about": "Inverse-document-frequency background for scanner/provenance/code.py's small-file rule: "
                "the number of documents (`directories`: a model directory of the transformers wheel named in "
                "`source`, or one module of the other libraries there, tests left out) whose hand-written "
                "Python files (modular-generated ones left out) hold each literal setting, import, prose line or skeleton item "
                "(statement, class header, signature), keyed by "
                "code.feature_hash; only those in two or more. `stock`: the hashes (code.stretch_hash, 12 hex digits each, concatenated) of "
                "the normalised stretches of code.STOCK_TILE tokens found in `stock_directories` or more directories. "
                "`runs`: the same for the code.KEPT_RUN-token windows of all hand-written files found in "
                "`run_directories` or more directories (the kept-code rule's idioms). "
                "Built by bench/code/background.py.",
                "source": f"https://pypi.org/project/transformers/ ({wheel}), transformers/models/*/; "
                + "; ".join(f"https://pypi.org/project/{p}/{v}/ ({top}/**.py)" for p, v, top in LIBRARIES),
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
