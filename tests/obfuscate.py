"""Disguise a Python file the way a copier would: every identifier the file defines renamed consistently,
definitions reordered, comments and docstrings stripped, reformatted (ast.unparse), a few statements inserted
and a few deleted. Library names (imports, attributes of imported modules, builtins) keep their names: renaming
them would break the copy."""

from __future__ import annotations

import ast
import builtins
import random


def _defined_names(tree: ast.AST) -> set[str]:
    imported: set[str] = set()
    defined: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            imported.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, ast.arg):
            defined.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            defined.add(node.id)
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.ctx, ast.Store)
            and isinstance(node.value, ast.Name)
            and node.value.id == "self"
        ):
            defined.add(node.attr)
    keep = imported | set(dir(builtins)) | {"self", "cls"}
    return {n for n in defined if n not in keep and not (n.startswith("__") and n.endswith("__"))}


class _Rename(ast.NodeTransformer):
    def __init__(self, names: dict[str, str]):
        self.names = names

    def _n(self, s):
        return self.names.get(s, s)

    def visit_Name(self, node):
        node.id = self._n(node.id)
        return node

    def visit_arg(self, node):
        node.arg = self._n(node.arg)
        return self.generic_visit(node)

    def visit_keyword(self, node):
        if node.arg:
            node.arg = self._n(node.arg)
        return self.generic_visit(node)

    def visit_Attribute(self, node):
        if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
            node.attr = self._n(node.attr)
        elif node.attr in self.names and not node.attr.startswith("_"):
            node.attr = self._n(node.attr)  # methods of the file's own classes called on other objects
        return self.generic_visit(node)

    def _def(self, node):
        node.name = self._n(node.name)
        return self.generic_visit(node)

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _def


def _strip_docstrings(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(getattr(body[0], "value", None), ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]


def _shuffle_defs(body: list[ast.stmt], rng: random.Random) -> list[ast.stmt]:
    slots = [i for i, s in enumerate(body) if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    defs = [body[i] for i in slots]
    rng.shuffle(defs)
    out = list(body)
    for i, d in zip(slots, defs):
        out[i] = d
    return out


def _edit_bodies(tree: ast.AST, rng: random.Random, inserts: int, deletes: int) -> None:
    funcs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and len(n.body) > 2]
    for fn in rng.sample(funcs, min(inserts, len(funcs))):
        at = rng.randrange(len(fn.body))
        fn.body.insert(at, ast.parse(f"_probe_{rng.randrange(10**6)} = {rng.randrange(100)}").body[0])
    for fn in rng.sample(funcs, min(deletes, len(funcs))):
        victims = [i for i, s in enumerate(fn.body) if isinstance(s, (ast.Expr, ast.Assign)) and i > 0]
        if victims and len(fn.body) > 1:
            del fn.body[rng.choice(victims)]


def obfuscate(source: str, seed: int = 0) -> str:
    rng = random.Random(seed)
    tree = ast.parse(source)
    names = sorted(_defined_names(tree))
    aliases = [f"n{rng.randrange(16**6):06x}" for _ in names]
    tree = _Rename(dict(zip(names, aliases))).visit(tree)
    _strip_docstrings(tree)
    tree.body = _shuffle_defs(tree.body, rng)
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            node.body = _shuffle_defs(node.body, rng)
    _edit_bodies(tree, rng, inserts=5, deletes=5)
    ast.fix_missing_locations(tree)
    return ast.unparse(tree)
