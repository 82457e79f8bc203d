"""The skeleton rule (scanner/provenance/code.py, `skeleton_evidence`) against small files it has never seen, written
independently but in the same idioms: how often does it call one a copy?

    .venv/bin/python bench/code/skeleton_null.py [--list]
    .venv/bin/python bench/code/skeleton_null.py --kept      (the kept-code rule, `code.kept_code`, on the same nulls)
    .venv/bin/python bench/code/skeleton_null.py --rare      (the small-file rule, `code.small_file_evidence`, too)

Null 1, `transformers` (the wheel bench/code/run.py downloads into bench/.cache/code): every small file (at most
NULL_LINES lines and SMALL_FILE_STATEMENTS statements, not `__init__.py`, not generated from a modular file) of
`models/<family>/` against every file of every OTHER family, each file its own upstream. One team wrote them from
one template (configs, processors, stub modelling files): the hardest null for a rule that must refuse stock.
Pairs with a declared link are left out: one file names the other's family in a `# Copied from
transformers.models.<family>.` marker or imports from it (`from ..<family>.`), as modular files do.

Null 2, other packages' small modules: every small module of the wheels in NULL_WHEELS (diffusers, timm, peft;
fetched with pip into bench/.cache/code when missing) and of the packages installed beside this interpreter,
against every file of every OTHER package (independent authors, though one project may ship several packages:
httpx2 and httpcore2 are read by hand), declared links (an import of the other folder, a `# Copied from`) left out.

The background (rules/code_background.json) was built from the same transformers directories, so an item two
families share counts as rare there (in-sample): null 1 is harsher than unseen code. Each firing pair is printed
for reading by hand; the strongest values of each quantity the rule judges are printed beside its thresholds.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import sysconfig
import zipfile
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))

from run import CACHE, wheel_models  # noqa: E402

from scanner.provenance import code  # noqa: E402

NULL_LINES = 80  # a small file: the skeletons and stubs the rule is for
NULL_WHEELS = ("diffusers", "timm", "peft")


@dataclass
class Source:
    family: str  # the folder whose files are one lineage (a transformers model, a package's subpackage)
    path: str
    text: str
    fingerprint: code.CodeFingerprint | None = None  # small files only
    items: tuple[code.Feature, ...] = ()
    settings: tuple[code.Feature, ...] = ()  # literal settings and imports (`code.features`), for the small-file rule


def _items(text: str) -> tuple[tuple[code.Feature, ...], tuple[code.Feature, ...]]:
    """A file's skeleton and its settings (`code.features`), parsed once."""
    try:
        tree = ast.parse(text)
        settings = code.features(tree)  # before `code.skeleton`, which masks the tree
        return code.skeleton(tree, text), settings
    except (SyntaxError, ValueError, RecursionError):
        return (), ()


def _load(files: Iterator[tuple[str, str, str]]) -> list[Source]:
    out = []
    for family, path, text in files:
        if code.is_generated(text) or "This file was automatically generated from" in text[:2000]:
            continue  # written from another file by a tool: a declared link to it
        src = Source(family, path, text)
        lines = text.count("\n") + 1
        if lines <= NULL_LINES and not path.endswith("__init__.py"):
            fp = code.fingerprint(path, text)
            if fp.statements <= code.SMALL_FILE_STATEMENTS:
                src.fingerprint, src.items, src.settings = fp, fp.skeleton, fp.features
        if src.fingerprint is None:
            src.items, src.settings = _items(text)
        out.append(src)
    return out


def transformers_files() -> Iterator[tuple[str, str, str]]:
    models = wheel_models()
    for f in sorted(models.glob("*/*.py")):
        yield f.parent.name, f"models/{f.parent.name}/{f.name}", f.read_text(encoding="utf-8")


def wheel_files() -> Iterator[tuple[str, str, str]]:
    for package in NULL_WHEELS:
        wheels = sorted(CACHE.glob(f"{package}-*.whl"))
        if not wheels:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", package, "-d", str(CACHE)],
                check=True,
            )
            wheels = sorted(CACHE.glob(f"{package}-*.whl"))
        with zipfile.ZipFile(wheels[-1]) as zf:
            for name in sorted(zf.namelist()):
                if name.endswith(".py") and name.startswith(package + "/"):
                    parts = name.split("/")
                    family = "/".join(parts[:-1]) if len(parts) > 2 else package
                    yield family, name, zf.read(name).decode("utf-8", "replace")
    site = Path(sysconfig.get_paths()["purelib"])
    for f in sorted(site.rglob("*.py")):
        rel = f.relative_to(site)
        if len(rel.parts) < 2 or "_vendor" in rel.parts or rel.parts[0] in ("pip", "setuptools"):
            continue
        try:
            yield "/".join(rel.parts[:2]) if len(rel.parts) > 2 else rel.parts[0], str(rel), f.read_text("utf-8")
        except (UnicodeDecodeError, OSError):
            continue


def _linked(a: Source, b: Source) -> bool:
    """One names the other's family: a `# Copied from` marker or an import of it."""

    def names(src: Source, family: str) -> bool:
        leaf = family.rsplit("/", 1)[-1]
        dotted = family.replace("/", ".")
        return bool(
            re.search(rf"(models\.|\.\.){re.escape(leaf)}\b|\b{re.escape(dotted)}\b", src.text)
            or re.search(rf"#\s*Copied from \S*\b{re.escape(leaf)}\b", src.text)
        )

    return names(a, b.family) or names(b, a.family)


def null(title: str, sources: list[Source], show: bool, across: Callable[[Source], str]) -> None:
    """Every small file against every file of another `across` group (a transformers family; a package)."""
    holders: dict[str, set[int]] = defaultdict(set)
    for i, s in enumerate(sources):
        for f in s.items:
            holders[f.key].add(i)
    small = [i for i, s in enumerate(sources) if s.fingerprint is not None]
    compared = fired = linked = 0
    strongest: dict[str, tuple[float, str]] = {"evidence": (0.0, ""), "share": (0.0, ""), "parts": (0.0, "")}
    fired_suspects = set()
    closest: list[tuple[float, float, float, int, str]] = []
    for i in small:
        s = sources[i]
        assert s.fingerprint is not None
        weights = code.skeleton_weights(s.items)
        total = sum(w for w, _ in weights.values())
        others = {j for k, (w, _) in weights.items() if w > 0 for j in holders[k] if across(sources[j]) != across(s)}
        parts = code._parts(s.fingerprint)
        for j in sorted(others):
            if _linked(s, sources[j]):
                linked += 1
                continue
            compared += 1
            o = sources[j]
            shared, copied = code.skeleton_evidence(s.fingerprint, {("u", o.path): o.items}).get("u", ((), False))
            score = sum(f.rarity for f in shared)
            share = score / total if total else 0.0
            spread = len({code.skeleton_part(parts, f.suspect_line) for f in shared})
            pair = f"{s.path} ~ {o.path}"
            # the strongest value of each quantity among pairs that pass the other two thresholds
            ok_e, ok_s = score >= code.SKELETON_EVIDENCE, share >= code.SKELETON_SHARE
            ok_p = spread >= code.SKELETON_PARTS
            if ok_s and ok_p:
                strongest["evidence"] = max(strongest["evidence"], (score, pair))
            if ok_e and ok_p:
                strongest["share"] = max(strongest["share"], (share, pair))
            if ok_e and ok_s:
                strongest["parts"] = max(strongest["parts"], (float(spread), pair))
            # how close the pair comes: its weakest quantity as a share of that quantity's threshold
            closeness = min(score / code.SKELETON_EVIDENCE, share / code.SKELETON_SHARE, spread / code.SKELETON_PARTS)
            closest.append((closeness, score, share, spread, pair))
            if copied:
                fired += 1
                fired_suspects.add(i)
                print(f"  FIRES {score:5.1f} {share:4.0%} {spread} parts  {pair}")
                if show:
                    for x in shared:
                        print(f"        {x.suspect_line:>4} <- {x.upstream_line:<5} {x.rarity:4.1f}  {x.key[:100]}")
    print(
        f"{title}: {len(sources)} files, {len(small)} small suspects, {compared} pairs sharing a rare item "
        f"({linked} with a declared link left out); the rule fires on {fired} pairs "
        f"({len(fired_suspects)} suspects, {len(fired_suspects) / max(1, len(small)):.1%} of them)"
    )
    for key, (value, pair) in strongest.items():
        print(f"  strongest {key} where the other two thresholds hold: {value:.2f}  {pair}")
    print("  closest pairs (weakest quantity / its threshold; evidence, share, parts):")
    for closeness, score, share, spread, pair in sorted(closest, reverse=True)[:8]:
        print(f"    {closeness:4.2f}  {score:5.1f} {share:4.0%} {spread}  {pair}")


def kept_null(title: str, sources: list[Source], across: Callable[[Source], str]) -> None:
    """The kept-code rule (`code.kept_code`): every small file against every file of another `across` group that
    holds one of its KEPT_RUN-token windows, each file judged as the only upstream (declared links left out). Prints
    how many pairs fire and the strongest pairs, in the tokens the rule sums (`KeptDefinition.counts`)."""
    upstream = code.UpstreamCode({})
    fps = [s.fingerprint or code.fingerprint(s.path, s.text) for s in sources]
    small = [i for i, s in enumerate(sources) if s.fingerprint is not None]
    wanted = {g for i in small for d in fps[i].definitions for g in code._grams(d.tokens)}
    holders: dict[int, dict[int, set[code.Place]]] = defaultdict(dict)  # window -> file -> definitions there
    for j, fp in enumerate(fps):
        for d in fp.definitions:
            for g in code._grams(d.tokens):
                if g in wanted:
                    holders[g].setdefault(j, set()).add((d.name, d.lines))
    rows: list[tuple[int, int, str]] = []  # (tokens the rule sums, all kept tokens, pair)
    linked: dict[tuple[int, int], bool] = {}
    for i in small:
        s = sources[i]
        index: dict[int, dict[code.FileKey, set[code.Place]]] = {}
        for d in fps[i].definitions:
            for g in code._grams(d.tokens):
                held = {}
                for j, place in holders.get(g, {}).items():
                    if across(sources[j]) != across(s):
                        if (i, j) not in linked:
                            linked[(i, j)] = _linked(s, sources[j])
                        if not linked[(i, j)]:
                            held[("u", sources[j].path)] = place
                if held:
                    index[g] = held
        for (_, path), defs in code.kept_code(fps[i], index, upstream.stock_positions).items():
            summed = sum(k.kept_tokens for k in defs if k.counts)
            rows.append((summed, sum(k.kept_tokens for k in defs), f"{s.path} ~ {path}"))
    fired = [r for r in rows if r[0] >= code.KEPT_TOKENS]
    print(
        f"{title}, kept-code rule (windows of {code.KEPT_RUN} tokens naming >= {code.KEPT_NAMES} things, "
        f"definitions of >= {code.KEPT_MIN_TOKENS} own tokens >= {code.KEPT_SHARE:.0%} kept, summing >= "
        f"{code.KEPT_TOKENS}): {len(small)} small suspects, {len(rows)} pairs sharing an informative window "
        f"({sum(linked.values())} with a declared link left out); fires on {len(fired)}"
    )
    for summed, total, pair in sorted(rows, reverse=True)[:8]:
        print(
            f"    summed {summed:>4} ({summed / code.KEPT_TOKENS:4.2f} of the threshold)  all kept {total:>4}  {pair}"
        )


def rare_null(title: str, sources: list[Source], across: Callable[[Source], str]) -> None:
    """The small-file rule (`code.small_file_evidence`: rare literal settings and imports): every small file against
    every file of another `across` group sharing one of its rare features, each file judged as the only upstream
    (declared links left out). Prints how many pairs fire and the closest pairs (the weaker of evidence and share,
    as a share of its threshold)."""
    holders: dict[str, set[int]] = defaultdict(set)
    for j, s in enumerate(sources):
        for f in s.settings:
            holders[f.key].add(j)
    rows: list[tuple[float, float, float, str]] = []  # (closeness, evidence, share, pair)
    linked = 0
    for s in sources:
        if s.fingerprint is None:
            continue
        weights = {f.key: code.rarity(f.key) for f in s.settings}
        total = sum(code._one_per_decision({f.key: f for f in s.settings}, weights).values())
        others = {
            j for f in s.settings if weights[f.key] > 0 for j in holders[f.key] if across(sources[j]) != across(s)
        }
        for j in sorted(others):
            if _linked(s, sources[j]):
                linked += 1
                continue
            o = sources[j]
            shared, _ = code.small_file_evidence(s.fingerprint, {("u", o.path): o.settings}).get("u", ((), False))
            score = sum(f.rarity for f in shared)
            share = score / total if total else 0.0
            closeness = min(score / code.MIN_RARE_EVIDENCE, share / code.RARE_SHARE)
            rows.append((closeness, score, share, f"{s.path} ~ {o.path}: " + "; ".join(f.key for f in shared)))
    fired = [r for r in rows if r[0] >= 1.0]
    print(
        f"{title}, small-file rule (rare settings and imports >= {code.MIN_RARE_EVIDENCE}, >= {code.RARE_SHARE:.0%} "
        f"of the file's own, one per decision): {sum(s.fingerprint is not None for s in sources)} small suspects, "
        f"{len(rows)} pairs sharing a rare feature ({linked} with a declared link left out); fires on {len(fired)}"
    )
    strongest = max(((r[1], r[3]) for r in rows if r[2] >= code.RARE_SHARE), default=(0.0, ""))
    print(
        f"  strongest evidence where the share holds: {strongest[0]:.2f} "
        f"({strongest[0] / code.MIN_RARE_EVIDENCE:.2f} of the threshold)  {strongest[1][:160]}"
    )
    print("  closest pairs (weaker quantity / its threshold; evidence, share):")
    for closeness, score, share, pair in sorted(rows, reverse=True)[:8]:
        print(f"    {closeness:4.2f}  {score:5.1f} {share:4.0%}  {pair[:160]}")


# each null: its title, its files, and what a pair must differ in (family or package) to be compared
NULLS = (
    ("null 1, transformers models/<family>/", transformers_files, lambda s: s.family),
    ("null 2, other packages", wheel_files, lambda s: s.path.split("/")[0]),
)


def main() -> None:
    show = "--list" in sys.argv
    if "--rare" not in sys.argv and "--kept" not in sys.argv:
        print(
            f"skeleton rule: evidence >= {code.SKELETON_EVIDENCE}, share >= {code.SKELETON_SHARE}, parts >= "
            f"{code.SKELETON_PARTS}, items in at most {code.SKELETON_STOCK_DIRECTORIES} background directories "
            f"(small: <= {code.SMALL_FILE_STATEMENTS} statements, <= {NULL_LINES} lines here)"
        )
    for title, files, across in NULLS:
        sources = _load(files())
        if "--rare" in sys.argv:
            rare_null(title, sources, across)
        elif "--kept" in sys.argv:
            kept_null(title, sources, across)
        else:
            null(title, sources, show, across)


if __name__ == "__main__":
    main()
