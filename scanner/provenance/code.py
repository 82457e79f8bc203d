"""Code provenance: definitions of a suspect Python file copied from a registered upstream's code, despite renaming,
reordering, reformatting and partial copying.

Nothing is executed or imported. Each file is parsed (`ast`) into definitions: every function and method, the rest of
every class body, and each block of module-level statements. Each definition becomes a normalised token stream
(`tokenize`: identifiers the author may rename become one symbol, literals become their kind, comments and
docstrings disappear). Every suspect definition is matched against every definition of every registered upstream
file, many-to-many, by greedy string tiling (Wise 1993, as in JPlag): maximal shared stretches of at least MIN_TILE
tokens, each token used once. A definition is copied when most of it lies in such stretches, or when a long core of
it does (long stretches from one upstream definition, however much new code was put around them); a file copies an
upstream when the copied definitions add up to enough normalised statements. What decides is what was copied, not
how much of either file it is, so a class lifted into a 2,000-line file counts as fully as a whole copied file.

Shared boilerplate is not copying: code under a `# Copied from …` marker (transformers' own reuse) is left out of
both sides, stretches found in the code of two or more registered upstreams are common stock, not evidence, and
stretches of STOCK_TILE tokens that a background of independent code (rules/code_background.json: the model
directories of a transformers release, beside the modules of six training libraries) holds in many of the
transformers directories are the team's templates, neither for nor against.
Import statements and licence headers are not definitions.

A file too small to hold a long definition (a config class, a stub) is judged by what it shares that is rare: literal
settings and import lines, each weighed by its inverse document frequency in the same background, each decision once
(the defaults of one signature were chosen together). Any file that keeps
several of the upstream's own comment and docstring lines (none of them background templates) copies it, however
much its statements were rewritten.
"""

from __future__ import annotations

import ast
import builtins
import functools
import hashlib
import io
import json
import keyword
import math
import re
import sqlite3
import tokenize
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Fixed on the tuning half of the real code pairs only (bench/code/tune.py prints the grid): with a 10-token tile,
# 70 % containment and 80-token anchors every tuning copy but one (a 12-line config) scores at least 11.6 copied
# statements and every tuning independent pair 0; the neighbouring settings (12-token tiles, 60-80 % containment,
# 80-120-token anchors) do the same. MIN_COPIED_STATEMENTS sits mid-gap. The held-out half was run once after these
# were fixed, and once more after ANCHOR_FROM_ONE, the small-file rule and the template stock (README: both looks).
MIN_TILE = 10  # tokens in a shared stretch before it counts: shorter ones are idioms (`v = v . view ( v , - 0 )`)
MIN_DEF_TOKENS = 80  # a copy needs a definition this long (tokens) copied: short ones match idioms by chance
MIN_SMALL_TOKENS = 25  # shorter definitions (a one-line forward()) are never judged; 25-80 only beside a long one
DEF_CONTAINMENT = 0.7  # share of a suspect definition's tokens inside shared stretches for it to count as copied
# A definition long enough to anchor a copy must have this share of its tokens from ONE upstream definition: a copied
# definition comes from a definition, while a patchwork of short idioms from a dozen (the residual `x = x + f(norm(x))`
# of every transformer block) is independent code in the same style. Tuning half: copies' anchors 0.75 and up, the
# strongest independent one (torchvision's VisionTransformer.forward against timm's) 0.53; set mid-gap.
ANCHOR_FROM_ONE = 0.65
# A long definition partly kept (its core copied, new code inserted, parts dropped; or lifted code that is mostly
# template stock around the upstream's own glue) counts as copied, and anchors, when the stretches it shares with ONE
# upstream definition that are at least CORE_RUN tokens long (template tokens count towards a stretch's length, not
# towards the core) hold CORE_TOKENS of its non-template tokens, whatever share of it they are. Fixed on the tuning
# half (bench/code/run.py --half tuning prints it): the strongest of 44 tuning independents holds 38 such tokens
# (torchvision's MLPBlock.__init__ against timm), the cross-lineage transformers files of the synthetic table at most
# 45; runs of 20 tokens reach 93 there (a sinusoidal-embedding helper), runs of 30 stay clear. CORE_TOKENS is over
# twice the strongest independent; the tuning copies it finds and the containment rule did not keep 41-58 % of
# their definitions (LongLoRA's attention forwards lifted from transformers' Llama, mmpretrain's HybridEmbed).
CORE_RUN = 30
CORE_TOKENS = 100
MIN_COPIED_STATEMENTS = 6  # normalised statements in copied definitions before a file counts as a copy
# Files too small to hold a definition of MIN_DEF_TOKENS (a 12-line config class, a stub) are judged by what they
# share that is rare: literal settings (`query_num = 64`) and import lines, weighed by how few documents of a
# background of independent code hold them (rules/code_background.json: the `transformers` model directories and
# the modules of six training libraries), each decision once (`_one_per_decision`: a signature's defaults, a
# class's fields, a dict's entries, an import statement's names were chosen together, often to mirror an interface
# such as torch's losses'). MIN_RARE_EVIDENCE asks for two decisions the background never saw (2 x ln(859/2) =
# 12.1) or three rare ones. Fixed on the tuning half (bench/code/tune.py --small) and the nulls of
# bench/code/skeleton_null.py --rare: the tuning copy it alone finds (Llama3-V's config) scores 17.1, the strongest
# tuning independent 5.2; the strongest null pair 10.3 among 157 small transformers files (aya_vision's config
# against llava_onevision's: one team, the background in-sample) and 6.1 among 1,423 small modules of other
# packages. Before decisions were counted once, 10.0 was the threshold and the first null fired on 1,040 pairs
# (configs sharing ViT-Base's or BART's defaults), the second on one (three names of one import).
SMALL_FILE_STATEMENTS = 30  # normalised statements: a file this small is judged by its rare shared settings too
MIN_RARE_EVIDENCE = 12.0  # summed rarity (natural-log IDF) of what a small file shares with one upstream
RARE_SHARE = 0.5  # ... which must also be at least this share of the rarity of everything the small file sets
# Prose kept: comment and docstring lines of PROSE_WORDS words or more (web addresses and notices aside) that a
# suspect file shares verbatim with one upstream, none of them in two or more directories of the background (whose
# docstring templates repeat) nor in two registered upstreams. A copier who rewrites the statements but keeps the
# upstream's own sentences copied them. Fixed on the tuning half (run.py --half tuning prints it): no tuning
# independent pair shares a single such line (44 pairs, old and new batch, some of them implementations of one API
# such as two EMA helpers), the copies that share any share 1 to 110; MIN_SHARED_PROSE asks for three, so that one
# or two sentences quoted from a common source (a paper, a library's documentation) are never enough alone.
PROSE_WORDS = 6
MIN_SHARED_PROSE = 3
# A skeleton kept: a small file (SMALL_FILE_STATEMENTS) whose statements, class headers and signatures (`skeleton()`)
# are mostly found in ONE upstream file, counting only items rarer than the background's idioms, weighed by rarity.
# Set before any null was run; bench/code/skeleton_null.py (each small file against every file of another family or
# package) then found no firing among 157 small transformers files (797 pairs sharing a rare item) nor 1,423 small
# modules of other packages (49,434 pairs): the strongest null pair passing the other two thresholds keeps 11.3 of
# rarity (typer's exceptions.py against click's), so SKELETON_EVIDENCE is 33 % above it; the strongest share among
# pairs passing the others is 0.50, SKELETON_SHARE 20 % above it; many null pairs pass both but lie in one part
# (configs of one family template). The tuning half has no independent pair sharing a single rare item (0.0). With
# the background widened (858 documents: an unseen item weighs more) the nulls still fire on none, the strongest
# pair passing the other two thresholds at 12.1 (0.81 of SKELETON_EVIDENCE); counting a class's methods as parts
# of their own would find one more tuning copy (Kornia's LayerScale) but fire on a transformers null pair.
SKELETON_STOCK_DIRECTORIES = 20  # an item in more of the background's 858 documents than this is an idiom: no weight
SKELETON_EVIDENCE = 15.0  # summed rarity of the shared items (an unseen item weighs ln(859/2) = 6.1)
SKELETON_SHARE = 0.6  # ... at least this share of the rarity of the suspect's whole skeleton
SKELETON_PARTS = 2  # ... found in this many of its parts (the import lines, each top-level class or function)
# Code kept: a small file (SMALL_FILE_STATEMENTS) whose definitions lie mostly in long stretches shared with ONE
# upstream file, counting only stretches that are evidence: KEPT_RUN-token windows of the normalised stream that the
# background does not hold in 5 or more directories (its `runs`: idioms) and that name KEPT_NAMES distinct things
# (`names_token`: a list of string settings or `os.path.join(v, s)` names too little); the template stretches stay
# neutral. A definition counts when it has KEPT_MIN_TOKENS tokens in such windows and KEPT_SHARE of them are found in
# the file; the counting definitions must hold KEPT_TOKENS kept tokens. Fixed on the tuning pairs and the nulls of
# bench/code/skeleton_null.py --kept (each small file against every file of another family or package): the
# strongest null pair holds 26 such tokens among 157 small transformers files (in-sample for the background) and 53
# among 1,423 small modules of other packages (mypyc's test config against mypy's, one project; the strongest pair of
# two projects 47: onnx's test utils against numpy's tests), so KEPT_TOKENS is 32 % above the strongest null pair and
# 49 % above the strongest independent one. Tuning: no independent pair holds a single such token; the copies that
# hold any hold 32 to 184. Windows of 12 tokens were tried first: the background holds too many of them (a copied
# `[torch.cat([v, v], dim=0) for v in v]` is everybody's), and a rule counting every window fired on lists of string
# settings and regular expressions in the second null.
KEPT_RUN = 16
KEPT_NAMES = 3
KEPT_MIN_TOKENS = 30
KEPT_SHARE = 0.6
KEPT_TOKENS = 70
FORMAT = 3  # stored fingerprint layout; rows of another layout are left out until the upstream is registered again
MAX_CODE_BYTES = 1024 * 1024  # a modelling file is tens of KB; past this a file is not hand-written code
MAX_TOKENS = 200_000
MAX_SEED_PLACES = 200  # a 10-token stretch found in more places of the upstream code than this is not evidence
MAX_CANDIDATES = 24  # upstream definitions tiled against one suspect definition (those sharing the most stretches)

_KEEP = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | frozenset(dir(builtins))
_SELF = frozenset({"self", "cls"})
_NOTICE = re.compile(r"copyright|\(c\)|©|licensed under|spdx-license-identifier|permission is hereby granted", re.I)
_GENERATED = re.compile(r"do not edit|this file (is|was) (automatically )?generated|generated by ", re.I)
_COPIED_FROM = re.compile(r"^\s*#\s*Copied from\s", re.I)
_HEADER_LICENSES = (  # phrases a licence header uses, in order of precedence
    (re.compile(r"SPDX-License-Identifier:\s*([A-Za-z0-9.+-]+)", re.I), None),
    (re.compile(r"Licensed under the Apache License,? Version 2\.0", re.I), "apache-2.0"),
    (re.compile(r"Permission is hereby granted, free of charge", re.I), "mit"),
)
_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


@dataclass(frozen=True)
class Definition:
    """One function, method, class body (without its methods) or block of module-level statements."""

    name: str  # qualified: `Resampler.forward`, `Resampler` (the class body), `<module>` (module-level statements)
    kind: str  # "function", "class" or "module"
    lines: tuple[int, int]  # first and last source line
    statements: int  # normalised statements (ast statements, docstrings left out)
    tokens: tuple[str, ...]  # the normalised token stream
    token_lines: tuple[int, ...]  # source line of each token

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "lines": list(self.lines),
            "statements": self.statements,
            "tokens": " ".join(self.tokens),
            "token_lines": list(self.token_lines),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Definition:
        tokens = tuple(str(d["tokens"]).split(" ")) if d["tokens"] else ()
        first, last = d["lines"]
        return cls(
            str(d["name"]),
            str(d["kind"]),
            (int(first), int(last)),
            int(d["statements"]),
            tokens,
            tuple(int(x) for x in d["token_lines"]),
        )


@dataclass(frozen=True)
class Feature:
    """A literal setting (`bind query_num=64`) or import (`import-line transformers: A, B, C`) and its line."""

    key: str
    line: int
    # features chosen together share the line of what holds them: a signature's defaults (its `def`), a class's
    # annotated fields (its `class`: the constructor's parameters), a dict literal's entries (its `{`), the names of
    # one import statement. Most often they mirror an interface everybody follows (torch's losses'
    # `ignore_index=-100, reduction='mean'`, ViT-Base's `hidden_size=768, patch_size=16`): one decision
    decision: int | None = None


@dataclass(frozen=True)
class SharedFeature:
    """A rare feature a small suspect file shares with an upstream file, with both lines."""

    key: str
    suspect_line: int
    upstream_path: str
    upstream_line: int
    rarity: float  # log of (background directories + 1) / (directories holding it + 1)


@dataclass(frozen=True)
class CodeFingerprint:
    """The definitions of one Python file, with the notices its header carries."""

    path: str
    definitions: tuple[Definition, ...]
    statements: int  # all normalised statements of the file's definitions
    notices: tuple[str, ...] = ()  # copyright / licence lines of the header comments, as written
    license: str | None = None  # licence the header names, when it names one
    error: str | None = None  # why the file was only partly read, if it was
    features: tuple[Feature, ...] = ()  # literal settings and import lines, for small files
    generated: bool = False  # its header says a tool wrote it (protoc's `DO NOT EDIT`): its literals are the tool's
    prose: tuple[Feature, ...] = ()  # comment and docstring lines (`prose <normalised text>`) and their lines
    skeleton: tuple[Feature, ...] = ()  # its statements, class headers and signatures, normalised (`skeleton()`)

    @property
    def tokens(self) -> int:
        return sum(len(d.tokens) for d in self.definitions)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "path": self.path,
            "definitions": [d.to_json() for d in self.definitions],
            "statements": self.statements,
            "notices": list(self.notices),
            "license": self.license,
            "error": self.error,
            "features": [[f.key, f.line, *([] if f.decision is None else [f.decision])] for f in self.features],
            "generated": self.generated,
            "prose": [[f.key, f.line] for f in self.prose],
            "skeleton": [[f.key, f.line] for f in self.skeleton],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CodeFingerprint:
        if d.get("format") != FORMAT:
            raise ValueError(f"code fingerprint of {d.get('path')!r} has another layout (format {d.get('format')})")
        return cls(
            str(d["path"]),
            tuple(Definition.from_json(x) for x in d["definitions"]),
            int(d["statements"]),
            tuple(str(n) for n in d.get("notices") or ()),
            d.get("license"),
            d.get("error"),
            tuple(Feature(str(f[0]), int(f[1]), *(int(x) for x in f[2:3])) for f in d.get("features") or ()),
            bool(d.get("generated")),
            tuple(Feature(str(k), int(n)) for k, n in d.get("prose") or ()),  # rows stored before it have none
            tuple(Feature(str(k), int(n)) for k, n in d.get("skeleton") or ()),  # nor a skeleton
        )


@dataclass(frozen=True)
class CopiedDefinition:
    """One suspect definition and the upstream definition most of it came from, with both line ranges."""

    suspect_name: str
    suspect_lines: tuple[int, int]
    upstream_path: str
    upstream_name: str
    upstream_lines: tuple[int, int]
    statements: int  # normalised statements of the suspect's definition
    containment: float  # share of the suspect definition's tokens (template stretches aside) shared with the upstream
    survived: float  # share of the upstream definition's tokens found in the suspect definition
    also_from: tuple[str, ...] = ()  # further upstream definitions that parts of it came from (`path:name`)
    stock_share: float = 0.0  # share of its tokens in the background's template stretches (neutral)
    from_one: float = 0.0  # share of its non-template tokens shared with the one upstream definition named
    kept_core: int = 0  # its non-template tokens in stretches of >= CORE_RUN tokens shared with that definition
    long: bool = False  # at least MIN_DEF_TOKENS significant tokens: long enough to anchor a copy

    @property
    def copied_statements(self) -> float:
        return self.statements * self.containment

    @property
    def counts(self) -> bool:
        """Most of it is shared (DEF_CONTAINMENT), or a long core of it is (CORE_TOKENS)."""
        return self.containment >= DEF_CONTAINMENT or self.kept_core >= CORE_TOKENS

    @property
    def anchors(self) -> bool:
        """It is long and came from one upstream definition: its upstream's other definitions may count too."""
        return self.counts and self.long and (self.from_one >= ANCHOR_FROM_ONE or self.kept_core >= CORE_TOKENS)


@dataclass(frozen=True)
class CodeMatch:
    """What one suspect file copies from one registered upstream's code (any of its files)."""

    upstream: str  # the registered upstream's name
    suspect_path: str
    definitions: tuple[CopiedDefinition, ...]  # the copied definitions, in suspect order
    suspect_statements: int  # all normalised statements of the suspect file
    notices_missing: tuple[str, ...] = ()  # upstream notice lines the suspect does not carry
    license: str | None = None  # the upstream code's licence
    shared: tuple[SharedFeature, ...] = ()  # a small file's rare settings and imports found in the upstream
    small_file_copied: bool = False  # the small-file rule holds (MIN_RARE_EVIDENCE and RARE_SHARE)
    prose: tuple[SharedFeature, ...] = ()  # the upstream's own comment and docstring lines the suspect keeps
    skeleton: tuple[SharedFeature, ...] = ()  # a small file's rare skeleton items found in one upstream file
    skeleton_copied: bool = False  # the skeleton rule holds (SKELETON_EVIDENCE, SKELETON_SHARE, SKELETON_PARTS)
    kept: tuple[KeptDefinition, ...] = ()  # a small file's definitions kept in long stretches of one upstream file

    @property
    def copied_statements(self) -> float:
        return sum(d.copied_statements for d in self.definitions)

    @property
    def rare_evidence(self) -> float:
        return sum(f.rarity for f in self.shared)

    @property
    def prose_copied(self) -> bool:
        return len(self.prose) >= MIN_SHARED_PROSE

    @property
    def copied(self) -> bool:
        return (
            self.copied_statements >= MIN_COPIED_STATEMENTS
            or self.small_file_copied
            or self.prose_copied
            or self.skeleton_copied
            or self.kept_copied
        )

    @property
    def kept_tokens(self) -> int:
        return sum(k.kept_tokens for k in self.kept)

    @property
    def kept_copied(self) -> bool:
        """The kept-code rule holds: the definitions mostly kept (`KeptDefinition.counts`) hold KEPT_TOKENS tokens."""
        return self.kept_tokens >= KEPT_TOKENS

    @property
    def similarity(self) -> float:
        """Share of the suspect file's statements that are copied."""
        return min(1.0, self.copied_statements / max(1, self.suspect_statements))

    @property
    def upstream_paths(self) -> tuple[str, ...]:
        shared = (*self.shared, *self.prose, *self.skeleton)
        paths = [*(d.upstream_path for d in self.definitions), *(f.upstream_path for f in shared)]
        return tuple(dict.fromkeys([*paths, *(k.upstream_path for k in self.kept)]))

    @property
    def upstream_path(self) -> str:
        return ", ".join(self.upstream_paths)

    @property
    def regions(self) -> tuple[CopiedDefinition, ...]:
        """The copied line ranges (each has suspect_lines and upstream_lines)."""
        return self.definitions


def _parse(source: str) -> ast.Module | None:
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _copied_from_lines(tree: ast.Module | None, source: str) -> set[int]:
    """Lines of definitions marked `# Copied from …`: transformers' declared reuse, not the author's code."""
    if tree is None:
        return set()
    lines = source.splitlines()
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            if first >= 2 and _COPIED_FROM.match(lines[first - 2]) and node.end_lineno:
                out.update(range(first, node.end_lineno + 1))
    return out


def _own_names(tree: ast.Module | None, source: str) -> set[str]:
    """Names the file itself binds (definitions, arguments, variables, attributes set on self): the names a copier
    can rename. Everything else (imports, library attributes such as `.view` or `nn.Linear`) keeps its spelling."""
    names: set[str] = set()
    if tree is not None:
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.ctx, ast.Store)
                and isinstance(node.value, ast.Name)
                and node.value.id in _SELF
            ):
                names.add(node.attr)
    else:  # does not parse: the same idea from the token stream
        prev = ""
        try:
            for tok in tokenize.generate_tokens(io.StringIO(source).readline):
                if tok.type == tokenize.NAME and prev in ("def", "class", "as", "for", "self.", "cls."):
                    names.add(tok.string)
                prev = prev + "." if tok.string == "." and prev in _SELF else tok.string
        except (tokenize.TokenError, IndentationError, SyntaxError):
            pass
    return {n for n in names if not (n.startswith("__") and n.endswith("__"))} - _KEEP - _SELF


def _parse_prefix(source: str) -> tuple[ast.Module | None, int]:
    """The syntax tree of the longest leading run of top-level statements that parses, and how many lines that is:
    a file broken near its end still has its definitions (bisection, so a few dozen parses at most)."""
    lines = source.splitlines(keepends=True)
    tree = _parse(source)
    if tree is not None:
        return tree, len(lines)
    starts = [i for i, line in enumerate(lines) if line[:1].isalpha() or line[:1] in ("@", "_")]
    good: tuple[ast.Module | None, int] = (None, 0)
    lo, hi = 0, len(starts) - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        prefix = _parse("".join(lines[: starts[mid]]))
        if prefix is not None:
            good, lo = (prefix, starts[mid]), mid + 1
        else:
            hi = mid - 1
    return good if good[1] else (None, 0)


def normalised_tokens(
    source: str, tree: ast.Module | None = None, own: set[str] | None = None
) -> tuple[list[str], list[tuple[int, int]], str | None]:
    """The token stream the fingerprint is built from, each token's (first, last) line, and any tokenizer error.
    `tree` is the file's syntax tree when the caller has it (or has the tree of the part that parses), `own` its
    `_own_names`."""
    tree = tree if tree is not None else _parse(source)
    skip = _copied_from_lines(tree, source)
    own = _own_names(tree, source) if own is None else own
    toks: list[str] = []
    where: list[tuple[int, int]] = []
    last = ""  # the previous significant raw token, to tell `x.name` from `name`
    line_start = True
    error = None
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            kind, text, (row, _), (end_row, _), _ = tok
            if kind in (tokenize.COMMENT, tokenize.NL, tokenize.ENCODING, tokenize.ENDMARKER):
                continue
            if kind == tokenize.NEWLINE:
                line_start = True
                if toks and toks[-1] not in (";", "{", "}"):
                    toks.append(";")
                    where.append((row, end_row))
                continue
            if kind in (tokenize.INDENT, tokenize.DEDENT):
                toks.append("{" if kind == tokenize.INDENT else "}")
                where.append((row, end_row))
                continue
            starts_line, line_start = line_start, False
            if row in skip:
                continue
            if kind == tokenize.STRING and starts_line:
                line_start = True  # a bare string statement is a docstring: dropped with its NEWLINE
                continue
            if kind == tokenize.NAME:
                if text in own:
                    norm = "v"
                elif last == ".":
                    norm = "." + text
                else:
                    norm = text
            elif kind == tokenize.NUMBER:
                norm = "0"
            elif kind == tokenize.STRING or kind == getattr(tokenize, "FSTRING_START", -1):
                norm = "s"
            elif kind in (getattr(tokenize, "FSTRING_MIDDLE", -1), getattr(tokenize, "FSTRING_END", -1)):
                continue
            else:
                norm = text
                if text in ")]}" and toks and toks[-1] == ",":
                    toks.pop()  # a trailing comma is formatting (black adds them, ast.unparse drops them)
                    where.pop()
            last = text
            toks.append(norm)
            where.append((row, end_row))
            if len(toks) >= MAX_TOKENS:
                error = f"only the first {MAX_TOKENS} tokens were read"
                break
    except (tokenize.TokenError, IndentationError, SyntaxError) as exc:
        error = f"tokenizer stopped: {str(exc)[:80]}"  # what was read so far still counts
    return toks, where, error


def _header(source: str) -> tuple[tuple[str, ...], str | None]:
    """Notice lines in the leading comments (and module docstring) and the licence they name."""
    head: list[str] = []
    for line in source.splitlines()[:60]:
        s = line.strip()
        if s and not s.startswith(("#", '"""', "'''", "*", "//")) and head and not _NOTICE.search(s):
            break
        head.append(s.lstrip("#").strip())
    notices = tuple(s for s in head if _NOTICE.search(s))
    text = "\n".join(head)
    for pattern, lic in _HEADER_LICENSES:
        if (m := pattern.search(text)) is not None:
            return notices, (lic or m.group(1).lower())
    return notices, None


def _first_line(node: ast.stmt) -> int:
    decorators = node.decorator_list if isinstance(node, _DEFS) else []
    return min([node.lineno] + [d.lineno for d in decorators])


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _count(nodes: Iterable[ast.stmt]) -> int:
    """Normalised statements: every statement inside, nested ones included, docstrings left out."""
    return sum(1 for top in nodes for n in ast.walk(top) if isinstance(n, ast.stmt) and not _is_docstring(n))


@dataclass
class _Span:
    name: str
    kind: str
    first: int
    last: int
    statements: int


def _spans(tree: ast.Module) -> list[_Span]:
    """The definitions of a module, outermost first (methods after their class: a line belongs to the last span
    that covers it). Imports are not definitions; module-level statements between definitions form one block."""
    spans: list[_Span] = []

    def visit_class(node: ast.ClassDef, prefix: str) -> None:
        name = prefix + node.name
        body = [s for s in node.body if not isinstance(s, _DEFS)]
        spans.append(_Span(name, "class", _first_line(node), node.end_lineno or node.lineno, 1 + _count(body)))
        for s in node.body:
            visit(s, name + ".")

    def visit(node: ast.stmt, prefix: str) -> None:
        if isinstance(node, ast.ClassDef):
            visit_class(node, prefix)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            spans.append(
                _Span(prefix + node.name, "function", _first_line(node), node.end_lineno or node.lineno, _count([node]))
            )

    block: list[ast.stmt] = []

    def close_block() -> None:
        if block:
            first, last = block[0].lineno, block[-1].end_lineno or block[-1].lineno
            spans.append(_Span(f"<module {first}-{last}>", "module", first, last, _count(block)))
            block.clear()

    for node in tree.body:
        if isinstance(node, _DEFS + (ast.Import, ast.ImportFrom)) or _is_docstring(node):
            close_block()
            visit(node, "")
        else:
            block.append(node)
    close_block()
    return spans


_TRIVIAL = frozenset({0, 1, -1, 2})  # numbers every file sets (`dim=1`, `num_layers=2`) are not settings


def _literal(node: ast.expr) -> str | None:
    """A number or string as written in a setting (`448`, `'gelu'`); None for anything else and for trivia."""
    sign = ""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        sign, node = "-", node.operand
    if not isinstance(node, ast.Constant) or isinstance(node.value, bool) or node.value is None:
        return None
    value = node.value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return None if (-value if sign else value) in _TRIVIAL else sign + repr(value)
    if isinstance(value, str) and not sign and len(value) >= 3:
        return repr(value)
    return None


def _target_name(node: ast.expr) -> str | None:
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None


def features(tree: ast.Module | None, own: set[str] | None = None) -> tuple[Feature, ...]:
    """Literal settings (a name or key bound to a number or string: assignments, parameter defaults, dict entries;
    not keyword arguments of calls, which are the called API's vocabulary, `mode='full'`) and imports (an import line of three or more names, or a name from a module three levels deep). Names
    stay as written here: a setting's name is part of what was copied, and its rarity decides what it is worth."""
    if tree is None:
        return ()
    out: dict[str, tuple[int, int | None]] = {}
    # a class's annotated fields are its constructor's parameters (dataclasses, pydantic, attrs, NamedTuple; the
    # `@strict` configs of transformers): their defaults are one signature's, chosen together
    fields = {
        id(s): node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        for s in node.body
        if isinstance(s, ast.AnnAssign)
    }

    def bind(name: str | None, value: ast.expr, line: int, decision: int | None = None) -> None:
        if name and (lit := _literal(value)) is not None:
            out.setdefault(f"bind {name}={lit}", (line, decision))

    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                bind(_target_name(target), node.value, node.lineno)
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            bind(_target_name(node.target), node.value, node.lineno, fields.get(id(node)))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args.posonlyargs + node.args.args
            for arg, default in zip(args[len(args) - len(node.args.defaults) :], node.args.defaults):
                bind(arg.arg, default, default.lineno, node.lineno)
            for arg, kw_default in zip(node.args.kwonlyargs, node.args.kw_defaults):
                if kw_default is not None:
                    bind(arg.arg, kw_default, kw_default.lineno, node.lineno)
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and isinstance(key.value, str):
                    bind(key.value, value, value.lineno, node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [a.name for a in node.names]
            # one statement, one decision: the names an API offers together are imported together
            if len(names) >= 3:  # the same names in the same order: a copied line, unless the background has it
                out.setdefault(f"import-line {node.module}: {', '.join(names)}", (node.lineno, node.lineno))
            if node.module.count(".") >= 2:
                for name in names:
                    out.setdefault(f"import {node.module}.{name}", (node.lineno, node.lineno))
    # a string naming one of the file's own settings (`attribute_map = {"num_hidden_layers": "n_layer"}`) is an
    # alias of that setting, not a setting of its own
    aliases = {repr(name) for name in (_own_names(tree, "") if own is None else own)}
    return tuple(
        Feature(k, line, decision)
        for k, (line, decision) in sorted(out.items())
        if not (k.startswith("bind ") and k.partition("=")[2] in aliases)
    )


_URL = re.compile(r"\S+://\S+|www\.\S+")
_WORD = re.compile(r"[a-z]{2,}")


def prose(tree: ast.Module | None, source: str) -> tuple[Feature, ...]:
    """Comment lines and docstring lines of PROSE_WORDS words or more, lower-cased with their whitespace collapsed
    and web addresses taken out (two authors cite one paper alike); not notice lines, nor `# Copied from` markers
    and the lines under them."""
    skip = _copied_from_lines(tree, source)
    texts: list[tuple[str, int]] = []
    if tree is not None:
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
                first = node.body[0]
                if _is_docstring(first):
                    doc = first.value.value  # type: ignore[attr-defined]
                    texts.extend((line, first.lineno + i) for i, line in enumerate(doc.splitlines()))
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                texts.append((tok.string.lstrip("#"), tok.start[0]))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass  # the comments read so far still count
    out: dict[str, int] = {}
    for text, line in texts:
        norm = " ".join(_URL.sub(" ", text).split()).lower()
        declared = norm.startswith("copied from ")  # transformers' reuse marker names its source: not evidence
        if line not in skip and len(_WORD.findall(norm)) >= PROSE_WORDS and not (_NOTICE.search(norm) or declared):
            out.setdefault(f"prose {norm}", line)
    return tuple(Feature(k, line) for k, line in sorted(out.items()))


class _Masked(ast.NodeTransformer):
    """Names the file binds (and names it imports from a sibling module, `from .config import Config`) become `v`,
    literals their kind, as in the token stream: what a renaming copier changes is left out of a skeleton item."""

    def __init__(self, own: set[str]):
        self.own = own

    def visit_Name(self, node: ast.Name) -> ast.Name:
        return ast.Name("v", node.ctx) if node.id in self.own else node

    def visit_Attribute(self, node: ast.Attribute) -> ast.expr:
        node.value = self.visit(node.value)
        if node.attr in self.own and isinstance(node.value, ast.Name) and node.value.id in _SELF:
            node.attr = "v"
        return node

    def visit_Constant(self, node: ast.Constant) -> ast.Constant:
        v = node.value
        if isinstance(v, bool) or v is None or v is Ellipsis:
            return node
        return ast.Constant(0 if isinstance(v, (int, float, complex)) else "s")

    def visit_JoinedStr(self, node: ast.JoinedStr) -> ast.Constant:
        return ast.Constant("s")


def _signature(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    """`def v(embed_dim, vision_dim=0)`: the parameters as written (callers pass them by name: the interface), the
    name kept only when it is a protocol's (`__init__`), `self` and annotations left out."""
    a = node.args
    plain = a.posonlyargs + a.args
    defaults = [None] * (len(plain) - len(a.defaults)) + list(a.defaults)
    params = [x.arg + ("=" + _default(d) if d is not None else "") for x, d in zip(plain, defaults)]
    params = [p for p in params if p.partition("=")[0] not in _SELF]
    if a.vararg:
        params.append("*" + a.vararg.arg)
    params += [x.arg + ("=" + _default(d) if d is not None else "") for x, d in zip(a.kwonlyargs, a.kw_defaults)]
    if a.kwarg:
        params.append("**" + a.kwarg.arg)
    name = node.name if node.name.startswith("__") and node.name.endswith("__") else "v"
    return f"def {name}({', '.join(params)})"


def _default(node: ast.expr) -> str:
    if isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, bool)):
        return repr(node.value)
    return "0" if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) else "x"


def skeleton(tree: ast.Module | None, source: str, own: set[str] | None = None) -> tuple[Feature, ...]:
    """The file's skeleton, one item per statement, in source order: import lines of three or more names, class
    headers (`class (LlamaPreTrainedModel)`: the bases as written, the file's own names masked), signatures
    (`_signature`), every other statement normalised (`stmt self.v = LlamaForCausalLM(v)`), a compound statement by
    its header (`if v is None`). Docstrings and code under `# Copied from` markers are not in it. What an item is
    worth is its rarity in the background: `super().__init__(v)` and `pass` are everybody's. It masks `tree` in
    place: the file's last reader. `own`: its `_own_names`, when the caller has them."""
    if tree is None:
        return ()
    skip = _copied_from_lines(tree, source)
    own = set(_own_names(tree, source) if own is None else own)  # a copy: sibling modules' names join it here
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:  # a sibling module's names: a copier renames them
            own.update(a.asname or a.name for a in node.names)
    masked = _Masked(own)
    out: list[Feature] = []

    def shape(node: ast.AST) -> str:
        return " ".join(ast.unparse(masked.visit(node)).split())

    def item(node: ast.stmt) -> str | None:
        """The statement's item: a compound statement's header only (its blocks are items of their own)."""
        if isinstance(node, ast.ImportFrom):
            names = [a.name for a in node.names]
            ok = node.level == 0 and node.module and len(names) >= 3
            return f"import-line {node.module}: {', '.join(names)}" if ok else None
        if isinstance(node, ast.ClassDef):
            bases = [shape(b) for b in node.bases] + [f"{k.arg}={shape(k.value)}" for k in node.keywords]
            return f"class ({', '.join(bases)})"
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return _signature(node)
        if isinstance(node, (ast.If, ast.While)):
            return f"stmt {type(node).__name__.lower()} {shape(node.test)}"
        if isinstance(node, (ast.For, ast.AsyncFor)):
            return f"stmt for {shape(node.target)} in {shape(node.iter)}"
        if isinstance(node, (ast.With, ast.AsyncWith)):
            return f"stmt with {', '.join(shape(i) for i in node.items)}"
        if isinstance(node, (ast.Import, ast.Try, ast.Match)) or type(node).__name__ == "TryStar":
            return None
        return f"stmt {shape(node)}"

    def blocks(node: ast.stmt) -> list[list[ast.stmt]]:
        if isinstance(node, ast.Match):
            return [case.body for case in node.cases]
        handlers = [h.body for h in getattr(node, "handlers", [])]
        return [getattr(node, "body", []), *handlers, getattr(node, "orelse", []), getattr(node, "finalbody", [])]

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if _is_docstring(node):
                continue
            try:
                key = item(node)
            except RecursionError:  # an expression nested too deep to normalise: left out
                key = None
            if key is not None and node.lineno not in skip:
                out.append(Feature(key, node.lineno))
            for block in blocks(node):
                visit(block)

    visit(tree.body)
    return tuple(out)


@dataclass(frozen=True)
class Background:
    """Independent code by many authors (rules/code_background.json, built by bench/code/background.py)."""

    directories: int
    features: dict[str, int]  # feature hash -> directories holding it (two or more)
    stock: frozenset[str]  # hashes of MIN_TILE-token stretches found in many directories: templates, not evidence
    runs: frozenset[str] = frozenset()  # hashes of KEPT_RUN-token windows found in many directories: idioms


@functools.cache
def background() -> Background:
    from scanner.knowledge import data_dir  # imported here: the matcher itself needs no knowledge base

    with open(data_dir("rules") / "code_background.json", encoding="utf-8") as fh:
        data = json.load(fh)
    stock = str(data.get("stock", ""))
    runs = str(data.get("runs", "")) if data.get("run_tokens") == KEPT_RUN else ""  # another window length: none
    return Background(
        int(data["directories"]),
        {str(k): int(v) for k, v in data["features"].items()},
        frozenset(stock[i : i + STRETCH_HASH_CHARS] for i in range(0, len(stock), STRETCH_HASH_CHARS)),
        frozenset(runs[i : i + STRETCH_HASH_CHARS] for i in range(0, len(runs), STRETCH_HASH_CHARS)),
    )


STRETCH_HASH_CHARS = 12
STOCK_TILE = 20  # tokens in a template stretch: templates repeat at length; idioms in short stretches (MIN_TILE)


def stretch_hash(tokens: Sequence[str]) -> str:
    """A normalised stretch's hash as the background stores it (48 bits: tens of thousands stored, no collisions
    to speak of)."""
    return hashlib.blake2b(" ".join(tokens).encode("utf-8"), digest_size=STRETCH_HASH_CHARS // 2).hexdigest()


def window_hashes(tokens: Sequence[str]) -> list[str]:
    """The background's hash (`stretch_hash`) of each KEPT_RUN-token window, in order."""
    return [stretch_hash(tokens[i : i + KEPT_RUN]) for i in range(len(tokens) - KEPT_RUN + 1)]


def feature_hash(key: str) -> str:
    """The background stores features by hash: counts, not the background's text."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def rarity(key: str) -> float:
    """Inverse document frequency against the background: a feature it lacks counts as found in one directory."""
    bg = background()
    return math.log((bg.directories + 1) / (bg.features.get(feature_hash(key), 1) + 1))


def held_by(key: str) -> int:
    """Background directories holding the feature; 1 stands for one or none (it keeps counts of two or more)."""
    return background().features.get(feature_hash(key), 1)


def in_background(key: str) -> bool:
    """The background holds the feature in two or more directories (it keeps no others)."""
    return feature_hash(key) in background().features


def _definitions(
    source: str,
) -> tuple[tuple[Definition, ...], int, str | None, tuple[Feature, ...], tuple[Feature, ...], tuple[Feature, ...]]:
    """The file's definitions with their normalised tokens, its statement count, any tokenizer error, its features,
    its prose and its skeleton."""
    tree, parsed = _parse_prefix(source)
    own = _own_names(tree, source)  # the names a copier can rename, read once for all three readers
    toks, where, error = normalised_tokens(source, tree, own)
    spans = _spans(tree) if tree is not None else []
    last = max([w[1] for w in where], default=0)
    if last > parsed:  # the part that does not parse is one definition of its own
        rest = [t for t, w in zip(toks, where) if w[0] > parsed]
        spans.append(_Span(f"<unparsed {parsed + 1}-{last}>", "module", parsed + 1, last, rest.count(";")))
    owner: dict[int, int] = {}  # line -> index of the innermost span covering it
    for i, s in enumerate(spans):
        for line in range(s.first, s.last + 1):
            owner[line] = i
    own_tokens: list[list[int]] = [[] for _ in spans]
    for t, (row, _) in enumerate(where):
        i = owner.get(row, -1)
        if i >= 0:
            own_tokens[i].append(t)
    defs = []
    for s, idx in zip(spans, own_tokens, strict=True):
        body = [t for t in idx if toks[t] not in ("{", "}", ";")]
        if not body:  # nothing left of it (all under `# Copied from`, or a class whose body is all methods)
            continue
        defs.append(
            Definition(
                s.name,
                s.kind,
                (s.first, s.last),
                s.statements,
                tuple(toks[t] for t in idx),
                tuple(where[t][0] for t in idx),
            )
        )
    feats, lines = features(tree, own), prose(tree, source)
    return tuple(defs), sum(d.statements for d in defs), error, feats, lines, skeleton(tree, source, own)


def fingerprint(path: str, source: str) -> CodeFingerprint:
    error = None
    if len(source) > MAX_CODE_BYTES:
        cut = source.rfind("\n", 0, MAX_CODE_BYTES) + 1 or MAX_CODE_BYTES  # whole lines, so the rest still parses
        source, error = source[:cut], f"only the first {cut} characters were read"
    defs, statements, tok_error, feats, lines, items = _definitions(source)
    notices, lic = _header(source)
    return CodeFingerprint(
        path, defs, statements, notices, lic, error or tok_error, feats, is_generated(source), lines, items
    )


def is_generated(source: str) -> bool:
    """The first lines say a tool wrote the file."""
    return bool(_GENERATED.search("\n".join(source.splitlines()[:5])))


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.lstrip("#").strip()).lower()


def missing_notices(upstream: CodeFingerprint, suspect_source: str) -> tuple[str, ...]:
    """The upstream's copyright lines the suspect file does not carry (whitespace and case aside)."""
    body = _norm(suspect_source.replace("#", " "))
    return tuple(n for n in upstream.notices if re.search(r"copyright|\(c\)|©", n, re.I) and _norm(n) not in body)


@dataclass(frozen=True)
class _Entry:
    """One registered upstream definition, ready to be tiled against."""

    upstream: str
    path: str
    definition: Definition
    ids: tuple[int, ...]


class _Vocabulary:
    def __init__(self) -> None:
        self.ids: dict[str, int] = {}

    def encode(self, tokens: Sequence[str]) -> tuple[int, ...]:
        return tuple(self.ids.setdefault(t, len(self.ids)) for t in tokens)


def _seeds(ids: Sequence[int]) -> list[tuple[int, ...]]:
    return [tuple(ids[i : i + MIN_TILE]) for i in range(len(ids) - MIN_TILE + 1)]


class UpstreamCode:
    """Every definition of every registered upstream file, indexed by its MIN_TILE-token stretches. A stretch found
    in two or more upstreams, or in many directories of the background, is common stock: it never starts a shared
    stretch."""

    def __init__(
        self,
        upstreams: dict[str, list[CodeFingerprint]],
        licenses: dict[str, str | None] | None = None,
        *,
        stock: frozenset[str] | None = None,
    ):
        self.vocabulary = _Vocabulary()
        self.entries: list[_Entry] = []
        self.files = {(name, fp.path): fp for name, fps in upstreams.items() for fp in fps}
        self.licenses = dict(licenses or {})
        self.where: dict[tuple[int, ...], list[tuple[int, int]]] = {}  # stretch -> (entry, position)
        owners: dict[tuple[int, ...], str] = {}
        self.common: set[tuple[int, ...]] = set()
        for name, fps in upstreams.items():
            for fp in fps:
                for d in fp.definitions:
                    ids = self.vocabulary.encode(d.tokens)
                    e = len(self.entries)
                    self.entries.append(_Entry(name, fp.path, d, ids))
                    for pos, seed in enumerate(_seeds(ids)):
                        self.where.setdefault(seed, []).append((e, pos))
                        if owners.setdefault(seed, name) != name:
                            self.common.add(seed)
        # a feature of two or more upstreams is common stock too
        feature_owners: dict[str, set[str]] = {}
        for (name, _), fp in self.files.items():
            for f in fp.features:
                feature_owners.setdefault(f.key, set()).add(name)
        for (name, _), fp in self.files.items():
            for f in (*fp.prose, *fp.skeleton):
                feature_owners.setdefault(f.key, set()).add(name)
        self.common_features = {k for k, names in feature_owners.items() if len(names) > 1}
        # a stretch repeated in very many places is boilerplate, and would make tiling quadratic on hostile input
        self.common.update(seed for seed, at in self.where.items() if len(at) > MAX_SEED_PLACES)
        self.stock = background().stock if stock is None else stock
        for seed in self.common:
            del self.where[seed]

    @functools.cached_property
    def runs(self) -> dict[int, dict[FileKey, set[Place]]]:
        """The KEPT_RUN-token windows of every upstream file (`run_index`), built when a small suspect first needs
        them."""
        return run_index(self.files)

    def stock_positions(self, tokens: Sequence[str]) -> set[int]:
        """Positions of `tokens` inside a background template stretch."""
        out: set[int] = set()
        if self.stock:
            for i in range(len(tokens) - STOCK_TILE + 1):
                if stretch_hash(tokens[i : i + STOCK_TILE]) in self.stock:
                    out.update(range(i, i + STOCK_TILE))
        return out


@dataclass(frozen=True)
class _Tiling:
    covered_a: set[int]
    covered_b: set[int]
    tiles: list[tuple[int, int, int]]  # (length, a position, b position) of each tile kept

    def kept_core(self, a: Sequence[int], neutral: set[int]) -> int:
        """Positions of a outside `neutral` that lie in tiles of at least CORE_RUN tokens; a tile that repeats
        itself (`x = 1` five hundred times) counts no more than its distinct MIN_TILE-token stretches."""
        core = 0
        for n, i, _ in self.tiles:
            if n >= CORE_RUN:
                distinct = len(set(_seeds(a[i : i + n])))
                core += min(len(set(range(i, i + n)) - neutral), distinct + MIN_TILE - 1)
        return core


def _tiles(a: Sequence[int], b: Sequence[int], starts: list[tuple[int, int]]) -> _Tiling:
    """Greedy string tiling from the shared MIN_TILE-token stretches (a position, b position): the longest maximal
    shared stretches first, each token of either side used once. Returns the covered positions of a and of b, and
    the tiles."""
    seen = set(starts)
    found = []
    for i, j in starts:
        if (i - 1, j - 1) in seen:
            continue  # not a maximal start: the stretch begins earlier
        n = MIN_TILE
        while i + n < len(a) and j + n < len(b) and a[i + n] == b[j + n]:
            n += 1
        found.append((n, i, j))
    found.sort(key=lambda x: (-x[0], x[1], x[2]))
    used_a: set[int] = set()
    used_b: set[int] = set()
    kept = []
    for n, i, j in found:
        span_a, span_b = range(i, i + n), range(j, j + n)
        if used_a.isdisjoint(span_a) and used_b.isdisjoint(span_b):
            used_a.update(span_a)
            used_b.update(span_b)
            kept.append((n, i, j))
    return _Tiling(used_a, used_b, kept)


def _span(lines: Sequence[int], covered: Iterable[int], fallback: tuple[int, int]) -> tuple[int, int]:
    rows = [lines[p] for p in covered]
    return (min(rows), max(rows)) if rows else fallback


def copied_definitions(suspect: CodeFingerprint, code: UpstreamCode) -> dict[str, list[CopiedDefinition]]:
    """For each upstream, the suspect definitions it holds most of, or a long core of (`CopiedDefinition.counts`).
    Short definitions (`super().__init__(); self.x = x` looks alike everywhere) and partial ones count only for an
    upstream that a long definition was copied from (`CopiedDefinition.anchors`)."""
    candidates = definition_candidates(suspect, code)
    anchored = {name for name, defs in candidates.items() if any(d.anchors for d in defs)}
    out = {name: [d for d in defs if d.counts] for name, defs in candidates.items() if name in anchored}
    return {name: defs for name, defs in out.items() if defs}


def _related_names(upstream: str, suspect: str) -> bool:
    """`FIDInceptionC.forward` and `InceptionC.forward`: the same method of classes whose names hold one another (a
    copier adds or drops a prefix; sibling classes of one upstream often share a method's code)."""
    up_class, _, up_method = upstream.lower().rpartition(".")
    own_class, _, own_method = suspect.lower().rpartition(".")
    return up_method == own_method and bool(up_class and own_class) and (up_class in own_class or own_class in up_class)


def definition_candidates(suspect: CodeFingerprint, code: UpstreamCode) -> dict[str, list[CopiedDefinition]]:
    """For each upstream, every suspect definition that shares a stretch with it, measured (containment in the
    upstream's definitions, any of them, many-to-many; share from one; kept core) but not yet judged."""
    out: dict[str, list[CopiedDefinition]] = {}
    for d in suspect.definitions:
        ids = code.vocabulary.encode(d.tokens)
        # the background's template stretches are neutral: neither evidence of copying nor against it
        neutral = code.stock_positions(d.tokens)
        significant = sum(t not in (";", "{", "}") for t in d.tokens)
        if sum(t not in (";", "{", "}") for i, t in enumerate(d.tokens) if i not in neutral) < MIN_SMALL_TOKENS:
            continue  # nothing of its own to judge
        own = len(ids) - len(neutral)
        seeds = _seeds(ids)
        repeated = {seed for seed, n in Counter(seeds).items() if n > MAX_SEED_PLACES}  # boilerplate on this side
        starts: dict[int, list[tuple[int, int]]] = {}
        for i, seed in enumerate(seeds):
            if seed in repeated:
                continue
            for e, j in code.where.get(seed, ()):
                starts.setdefault(e, []).append((i, j))
        best = sorted(starts, key=lambda e: -len(starts[e]))[:MAX_CANDIDATES]
        by_upstream: dict[str, list[tuple[int, _Tiling]]] = {}
        for e in best:
            tiling = _tiles(ids, code.entries[e].ids, starts[e])
            if tiling.covered_a:
                by_upstream.setdefault(code.entries[e].upstream, []).append((e, tiling))
        for name, hits in by_upstream.items():
            union = set().union(*(t.covered_a for _, t in hits))
            top = max(len(t.covered_a) for _, t in hits)
            # the upstream definition most of it came from; between near-equals (identical helpers are common),
            # the one with the suspect definition's own name, then a related name, then its method name
            hits.sort(
                key=lambda h: (
                    len(h[1].covered_a) < 0.95 * top,
                    code.entries[h[0]].definition.name != d.name,
                    not _related_names(code.entries[h[0]].definition.name, d.name),
                    code.entries[h[0]].definition.name.rpartition(".")[2] != d.name.rpartition(".")[2],
                    -len(h[1].covered_a),
                )
            )
            e, tiling = hits[0]
            entry = code.entries[e]
            also = tuple(
                f"{code.entries[h[0]].path}:{code.entries[h[0]].definition.name}"
                for h in hits[1:]
                if len(h[1].covered_a - tiling.covered_a) >= MIN_TILE
            )
            out.setdefault(name, []).append(
                CopiedDefinition(
                    d.name,
                    _span(d.token_lines, union, d.lines),
                    entry.path,
                    entry.definition.name,
                    _span(entry.definition.token_lines, tiling.covered_b, entry.definition.lines),
                    d.statements,
                    len(union - neutral) / own,
                    len(tiling.covered_b) / max(1, len(entry.ids)),
                    also,
                    len(neutral) / len(ids),
                    from_one=max(len(t.covered_a - neutral) for _, t in hits) / own,
                    kept_core=max(t.kept_core(ids, neutral) for _, t in hits),
                    long=significant >= MIN_DEF_TOKENS,
                )
            )
    return out


def matches(
    suspect: CodeFingerprint, code: UpstreamCode, suspect_source: str | None = None, *, copied_only: bool = True
) -> list[CodeMatch]:
    """What the suspect file copies from each upstream (only the upstreams it copies from, unless told otherwise)."""
    found = copied_definitions(suspect, code)
    small = {}
    skel: dict[str, tuple[tuple[SharedFeature, ...], bool]] = {}
    kept_parts: dict[str, tuple[KeptDefinition, ...]] = {}
    if suspect.statements <= SMALL_FILE_STATEMENTS and not suspect.generated:
        small = small_file_evidence(suspect, {k: fp.features for k, fp in code.files.items()}, code.common_features)
        skel = skeleton_evidence(suspect, {k: fp.skeleton for k, fp in code.files.items()}, code.common_features)
        kept_parts = best_kept(kept_code(suspect, code.runs, code.stock_positions))
    kept = shared_prose(suspect, code)
    out = []
    for name in dict.fromkeys([*found, *small, *kept, *skel, *kept_parts]):
        defs = found.get(name, [])
        shared, small_copied = small.get(name, ((), False))
        lines = kept.get(name, ())
        items, skeleton_copied = skel.get(name, ((), False))
        parts = kept_parts.get(name, ())
        kept_lines = (*shared, *lines, *items)
        paths = dict.fromkeys(
            [
                *(d.upstream_path for d in defs),
                *(f.upstream_path for f in kept_lines),
                *(k.upstream_path for k in parts),
            ]
        )
        files = [code.files[(name, p)] for p in paths]
        missing: tuple[str, ...] = ()
        if suspect_source is not None:
            missing = tuple(dict.fromkeys(n for fp in files for n in missing_notices(fp, suspect_source)))
        lic = next((fp.license for fp in files if fp.license), None) or code.licenses.get(name)
        m = CodeMatch(
            name,
            suspect.path,
            tuple(defs),
            suspect.statements,
            missing,
            lic,
            shared,
            small_copied,
            lines,
            items,
            skeleton_copied,
            parts,
        )
        if m.copied or not copied_only:
            out.append(m)
    return out


def _one_per_decision(found: dict[str, Feature], weights: dict[str, float]) -> dict[str, float]:
    """Features with the weight each adds, one per decision its author made: several values of one setting
    (`type='array'`, `type='integer'`) are one vocabulary, and settings held together (`Feature.decision`: a
    signature's defaults, a class's fields, a dict's entries) were chosen together, most often to mirror an
    interface, so only the rarest of each counts."""
    by_name: dict[str, tuple[float, str]] = {}
    for key in found:
        name = key.partition("=")[0] if key.startswith("bind ") else key
        by_name[name] = max(by_name.get(name, (-1.0, "")), (weights[key], key))
    by_decision: dict[int | str, tuple[float, str]] = {}
    for w, key in by_name.values():
        held = found[key].decision
        decision: int | str = key if held is None else held  # the line of what holds it, or itself alone
        by_decision[decision] = max(by_decision.get(decision, (-1.0, "")), (w, key))
    return {key: w for w, key in by_decision.values()}


def small_file_evidence(
    suspect: CodeFingerprint, files: Mapping[FileKey, Sequence[Feature]], common: Collection[str] = ()
) -> dict[str, tuple[tuple[SharedFeature, ...], bool]]:
    """For each upstream (`files`: each (upstream, path)'s features; `common`: features of two or more upstreams,
    left out), the rare features a small suspect file shares with ONE of its files, and whether they add up to a
    copy: rare enough in all (MIN_RARE_EVIDENCE) and most of what the file sets (RARE_SHARE), so a stub that only
    shares `use_cache=True` and `from torch import nn` is not one. Each decision counts once (`_one_per_decision`)."""
    weights = {f.key: rarity(f.key) for f in suspect.features}
    total = sum(_one_per_decision({f.key: f for f in suspect.features}, weights).values())
    out: dict[str, tuple[tuple[SharedFeature, ...], bool]] = {}
    for (name, path), features in files.items():
        theirs = {f.key: f.line for f in features}  # a file's features are distinct (`features`)
        both = {f.key: f for f in suspect.features if f.key in theirs and f.key not in common}
        shared = [
            SharedFeature(k, both[k].line, path, theirs[k], w)
            for k, w in _one_per_decision(both, weights).items()
            if w > 0
        ]
        if shared and sum(s.rarity for s in shared) > sum(s.rarity for s in out.get(name, ((), False))[0]):
            score = sum(s.rarity for s in shared)
            out[name] = (tuple(shared), score >= MIN_RARE_EVIDENCE and score >= RARE_SHARE * total)
    return out


def _parts(suspect: CodeFingerprint) -> list[tuple[int, int, str]]:
    """The suspect's top-level definitions (line ranges and names): the parts a skeleton is made of."""
    return [(d.lines[0], d.lines[1], d.name) for d in suspect.definitions if "." not in d.name]


def skeleton_part(parts: list[tuple[int, int, str]], line: int) -> str:
    """The top-level definition a line belongs to; `<imports>` for the import lines between them."""
    return next((name for first, last, name in parts if first <= line <= last), "<imports>")


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_SYNTAX = _KEEP | _SELF | {"v", "stmt", "def", "class", "import-line"}


def names_something(key: str) -> bool:
    """A skeleton item that names something of its own: a library class or function, an attribute of an API, a
    parameter as written (`self.v = LlamaForCausalLM(v)`, `def v(embed_dim, vision_dim)`). Pure syntax over masked
    names and builtins (`return self`, `v: list[str] = None`, `def __enter__()`) is anybody's, however rare the
    background finds it."""
    names = _IDENTIFIER.findall(_QUOTED.sub(" ", key.partition(" ")[2]))
    return any(n not in _SYNTAX and not (n.startswith("__") and n.endswith("__")) for n in names)


def skeleton_weights(items: Iterable[Feature], common: Collection[str] = ()) -> dict[str, tuple[float, int]]:
    """Each distinct skeleton item (its first line) with what it is worth: its rarity, or nothing for stock (in
    more than SKELETON_STOCK_DIRECTORIES background directories), for an item that names nothing, or for one of
    `common`."""
    out: dict[str, tuple[float, int]] = {}
    for f in items:
        if f.key not in out:
            w = rarity(f.key) if f.key not in common and names_something(f.key) else 0.0
            out[f.key] = (w if held_by(f.key) <= SKELETON_STOCK_DIRECTORIES else 0.0, f.line)
    return out


def skeleton_evidence(
    suspect: CodeFingerprint, files: Mapping[tuple[str, str], Sequence[Feature]], common: Collection[str] = ()
) -> dict[str, tuple[tuple[SharedFeature, ...], bool]]:
    """For each upstream (`files`: each (upstream, path)'s skeleton; `common`: items of two or more upstreams, left
    out), the rare skeleton items (`skeleton()`) a small suspect file shares with ONE of its files, and whether they
    make a copy: rare enough in all (SKELETON_EVIDENCE), most of the rarity of the suspect's own skeleton
    (SKELETON_SHARE: a stub that kept the upstream's structure and little else), and spread over SKELETON_PARTS of
    its parts (imports, classes, functions), not one borrowed line. Items of more than SKELETON_STOCK_DIRECTORIES
    background directories (`super().__init__(v)`, `pass`, `class (PreTrainedModel)`, `config_class = v`) weigh
    nothing: everybody's idioms (`skeleton_weights`)."""
    weights = skeleton_weights(suspect.skeleton, common)
    total = sum(w for w, _ in weights.values())
    parts = _parts(suspect)
    out: dict[str, tuple[tuple[SharedFeature, ...], bool]] = {}
    for (name, path), items in files.items():
        theirs: dict[str, int] = {}
        for f in items:
            theirs.setdefault(f.key, f.line)
        shared = tuple(
            SharedFeature(k, line, path, theirs[k], w) for k, (w, line) in weights.items() if w > 0 and k in theirs
        )
        score = sum(f.rarity for f in shared)
        if shared and score > sum(f.rarity for f in out.get(name, ((), False))[0]):
            spread = len({skeleton_part(parts, f.suspect_line) for f in shared})
            copied = score >= SKELETON_EVIDENCE and score >= SKELETON_SHARE * total and spread >= SKELETON_PARTS
            out[name] = (tuple(sorted(shared, key=lambda f: f.suspect_line)), copied)
    return out


@dataclass(frozen=True)
class KeptDefinition:
    """A definition of a small suspect file (a function, a method, a class body, a block of module-level statements)
    with what of it lies in long stretches shared with one upstream file (`kept_code`)."""

    name: str
    lines: tuple[int, int]
    upstream_path: str
    upstream_name: str  # the upstream definition most of the kept stretches lie in
    upstream_lines: tuple[int, int]  # that definition's first and last line
    own_tokens: int  # its tokens that name something (`names_token`), outside the background's templates and idioms
    kept_tokens: int  # ... of them in stretches of at least KEPT_RUN tokens shared with the upstream file

    @property
    def share(self) -> float:
        return self.kept_tokens / max(1, self.own_tokens)

    @property
    def counts(self) -> bool:
        """Most of its own code is kept (KEPT_SHARE), and it has enough of its own to judge (KEPT_MIN_TOKENS: a
        one-line method is alike in much independent code)."""
        return self.own_tokens >= KEPT_MIN_TOKENS and self.share >= KEPT_SHARE


def names_token(token: str) -> bool:
    """A normalised token that names something: a library or API name (`torch`, `F`), an attribute (`.reshape`,
    `.float`), a keyword argument's name (`persistent`). Punctuation, literals (`s`, `0`), keywords, builtins and
    the file's own names (`v`) are syntax: a list of string settings or of `self.v = v` lines names nothing."""
    name = token[1:] if token.startswith(".") else token
    return name.isidentifier() and (token.startswith(".") or token not in _SYNTAX and token != "s")


def _grams(tokens: Sequence[str]) -> list[int]:
    """The hash of each KEPT_RUN-token window (one process's hashes: built and looked up in the same run)."""
    return [hash(tuple(tokens[i : i + KEPT_RUN])) for i in range(len(tokens) - KEPT_RUN + 1)]


Place = tuple[str, tuple[int, int]]  # an upstream definition's name and lines
FileKey = tuple[str, str]  # (upstream, path)


def run_index(files: Mapping[FileKey, CodeFingerprint]) -> dict[int, dict[FileKey, set[Place]]]:
    """Every KEPT_RUN-token window of every upstream file's definitions, with the files holding it and the
    definitions there. A window of two or more upstreams is common stock and left out, as for the tiling's
    stretches."""
    out: dict[int, dict[FileKey, set[Place]]] = {}
    for key, fp in files.items():
        for d in fp.definitions:
            for g in _grams(d.tokens):
                out.setdefault(g, {}).setdefault(key, set()).add((d.name, d.lines))
    return {g: held for g, held in out.items() if len({name for name, _ in held}) == 1}


def kept_code(
    suspect: CodeFingerprint,
    index: Mapping[int, Mapping[FileKey, Collection[Place]]],
    stock: Callable[[Sequence[str]], set[int]],
) -> dict[FileKey, tuple[KeptDefinition, ...]]:
    """For each upstream file sharing a window with the suspect, each suspect definition sharing one, with its own
    tokens and those of them covered by KEPT_RUN-token windows found in that file (`index`: `run_index`). Tokens of
    the background's template stretches (`stock`) and of the windows it holds in many directories (its `runs`) are
    neutral: neither own nor kept."""
    idioms = background().runs
    out: dict[FileKey, list[KeptDefinition]] = {}
    for d in suspect.definitions:
        neutral = stock(d.tokens)
        names = [names_token(t) for t in d.tokens]
        # a window is evidence when the background does not hold it in many directories (an idiom) and it names
        # enough (a list of string settings, `os.path.join(v, s)` alone, is anybody's); tokens in no such window
        # are neutral, like the template stretches
        common = [
            h in idioms
            or len({t for t, n in zip(d.tokens[i : i + KEPT_RUN], names[i : i + KEPT_RUN]) if n}) < KEPT_NAMES
            for i, h in enumerate(window_hashes(d.tokens))
        ]
        informative = set().union(*(range(i, i + KEPT_RUN) for i, c in enumerate(common) if not c))
        mine = {i for i in informative if d.tokens[i] not in (";", "{", "}") and i not in neutral}
        kept: dict[FileKey, set[int]] = {}
        places: dict[FileKey, list[Place]] = {}
        for i, g in enumerate(_grams(d.tokens)):
            if common[i]:
                continue
            for key, held in index.get(g, {}).items():
                kept.setdefault(key, set()).update(mine.intersection(range(i, i + KEPT_RUN)))
                places.setdefault(key, []).extend(held)
        own_name = d.name.rpartition(".")[2].strip("_")
        for key, positions in kept.items():
            # the upstream definition most windows came from; between equals (twin helpers that differ only in a
            # string), the one of the suspect definition's own name
            counts = Counter(places[key])
            name, lines = min(
                counts, key=lambda p: (-counts[p], p[0].rpartition(".")[2].strip("_") != own_name, p[1], p[0])
            )
            kept_def = KeptDefinition(d.name, d.lines, key[1], name, lines, len(mine), len(positions))
            out.setdefault(key, []).append(kept_def)
    return {key: tuple(found) for key, found in out.items()}


def best_kept(found: Mapping[FileKey, Sequence[KeptDefinition]]) -> dict[str, tuple[KeptDefinition, ...]]:
    """For each upstream, the definitions that count (`KeptDefinition.counts`) from its ONE file that keeps the most
    of them."""
    out: dict[str, tuple[KeptDefinition, ...]] = {}
    for (name, _), parts in found.items():
        counting = tuple(k for k in parts if k.counts)
        if counting and sum(k.kept_tokens for k in counting) > sum(k.kept_tokens for k in out.get(name, ())):
            out[name] = counting
    return out


def shared_prose(suspect: CodeFingerprint, code: UpstreamCode) -> dict[str, tuple[SharedFeature, ...]]:
    """For each upstream, the prose lines of the suspect found in its files (each line once), leaving out those of
    two or more registered upstreams and those the background holds in two or more directories."""
    out: dict[str, dict[str, SharedFeature]] = {}
    mine = {f.key: f.line for f in suspect.prose if f.key not in code.common_features and not in_background(f.key)}
    for (name, path), fp in code.files.items():
        for f in fp.prose:
            if f.key in mine:
                out.setdefault(name, {}).setdefault(
                    f.key, SharedFeature(f.key, mine[f.key], path, f.line, rarity(f.key))
                )
    return {name: tuple(sorted(lines.values(), key=lambda f: f.suspect_line)) for name, lines in out.items()}


def compare(
    suspect: CodeFingerprint, upstream: CodeFingerprint, name: str = "upstream", suspect_source: str | None = None
) -> CodeMatch:
    """One suspect file against one upstream file (an empty match when nothing is copied): for tests and the
    benchmark."""
    found = matches(suspect, UpstreamCode({name: [upstream]}), suspect_source, copied_only=False)
    return found[0] if found else CodeMatch(name, suspect.path, (), suspect.statements, (), upstream.license)


CODE_SCHEMA = """
CREATE TABLE IF NOT EXISTS code_files (
  upstream TEXT NOT NULL, path TEXT NOT NULL, license TEXT, data TEXT NOT NULL,
  PRIMARY KEY (upstream, path)
);
"""


class CodeStore:
    """Registered upstreams' code fingerprints, in the fingerprint index's SQLite file (table `code_files`)."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db
        self.db.executescript(CODE_SCHEMA)

    def add(self, upstream: str, files: dict[str, str], license: str | None) -> int:
        """Fingerprint and store an upstream's Python files (replacing what was stored for it). Returns the count."""
        rows = [
            (upstream, path, license, json.dumps(fingerprint(path, text).to_json()))
            for path, text in sorted(files.items())
        ]
        with self.db:
            self.db.execute("DELETE FROM code_files WHERE upstream=?", (upstream,))
            self.db.executemany("INSERT INTO code_files VALUES (?,?,?,?)", rows)
        return len(rows)

    def upstreams(self) -> tuple[dict[str, list[CodeFingerprint]], dict[str, str | None]]:
        """The stored fingerprints by upstream, and each upstream's licence. Rows stored in an older layout are left
        out (`index add` registers the upstream again)."""
        fps: dict[str, list[CodeFingerprint]] = {}
        licenses: dict[str, str | None] = {}
        for name, lic, data in self.db.execute(
            "SELECT upstream, license, data FROM code_files ORDER BY upstream, path"
        ):
            try:
                fp = CodeFingerprint.from_json(json.loads(data))
            except (ValueError, KeyError, TypeError):
                continue
            fps.setdefault(name, []).append(fp)
            licenses[name] = lic
        return fps, licenses


def code_matches(files: dict[str, str], store: CodeStore, exclude: Iterable[str] = ()) -> list[CodeMatch]:
    """Every shipped Python file matched against every registered upstream's code; the copies found."""
    upstreams, licenses = store.upstreams()
    for name in exclude:
        upstreams.pop(name, None)
    if not upstreams or not files:
        return []
    code = UpstreamCode(upstreams, licenses)
    out: list[CodeMatch] = []
    for path, text in sorted(files.items()):
        out.extend(matches(fingerprint(path, text), code, text))
    return out
