"""Option values without pydantic: typer ≥ 0.29 coerces every parameter through a pydantic TypeAdapter it builds
on first use, and importing pydantic and building the adapters costs about a third of a re-scan's CPU time.

Every originscan parameter is a bool flag, a str, a Path or a list of str or Path (ints keep typer's adapter). For a
value of exactly the type click hands over, typer's coercion is known: None stays None, a str is kept, a Path goes
through typer's own path checks (`coerce_cli_path`, given a Path so that it needs no adapter), a list is each item
coerced. `install` makes typer use a runtime parameter that does exactly that, and hands any other value (or
annotation, or path flag) to typer's own. It relies on typer internals (`_TyperParameter.get_runtime_param` and
`typer._coercion`), so it installs nothing when they are not there: with another typer every value goes through
typer as before. tests/test_startup.py checks that both give the same values and that a scan loads no pydantic.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:  # typer internals (0.29+); without them nothing is installed
    from typer._coercion import RuntimeParam, TypeDescriptor, build_runtime_param
    from typer._param_types import coerce_cli_path
    from typer.core import _TyperParameter
except ImportError:  # pragma: no cover - another typer version
    RuntimeParam = None  # type: ignore[assignment,misc]

LEAVES = (str, Path, bool)


def _leaf(annotation: Any) -> tuple[type | None, bool]:
    """(str, Path or bool; whether a list of it) for the annotations coerced here, else (None, False). typer has
    already stripped Optional."""
    many = typing.get_origin(annotation) is list
    if many:
        (annotation,) = typing.get_args(annotation) or (None,)
        if annotation is bool:
            return None, False
    return (annotation if annotation in LEAVES else None), many


def _no_path_flags(info: Any) -> bool:
    """No parser and none of the path checks `coerce_cli_path` only makes when asked: originscan sets none."""
    return (
        info.parser is None
        and info.path_type is None
        and not (info.resolve_path or info.allow_dash or info.exists or info.writable)
        and info.file_okay
        and info.dir_okay
    )


if RuntimeParam is not None:

    @dataclass(frozen=True)
    class PlainRuntimeParam(RuntimeParam):
        """typer's coercion of a str, Path or bool parameter (or a list of str or Path) without a TypeAdapter.
        None never reaches `_coerce_value` (RuntimeParam.coerce returns it), nor does a bool flag's bool."""

        leaf: type
        many: bool

        def _plain(self, value: Any) -> bool:
            return type(value) is str or (self.leaf is Path and isinstance(value, Path))

        def _one(self, value: str | Path, param: Any, ctx: Any) -> Any:
            if self.leaf is str:
                return value
            path = value if isinstance(value, Path) else Path(value)
            return coerce_cli_path(path, self.parameter_info, path_type=Path, param=param, ctx=ctx)

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            try:
                if self.leaf is not bool:
                    if self.many and isinstance(value, (list, tuple)) and all(self._plain(v) for v in value):
                        return [self._one(v, param, ctx) for v in value]
                    if not self.many and self._plain(value):
                        return self._one(value, param, ctx)
            except ValueError:  # a path os.stat refuses (a NUL byte): typer words the error through pydantic
                pass
            # anything else (a flag's string, bytes, one value for a list): typer's own coercion
            return build_runtime_param(param.type_descriptor)._coerce_value(value, param, ctx)

    def plain_runtime_param(descriptor: TypeDescriptor) -> PlainRuntimeParam | None:
        """The runtime parameter above for `descriptor`, or None where typer's own is needed."""
        leaf, many = _leaf(descriptor.annotation)
        if leaf is None or descriptor.file_annotation is not None or not _no_path_flags(descriptor.parameter_info):
            return None
        return PlainRuntimeParam(descriptor.parameter_info, descriptor.annotation, leaf, many)


def install() -> bool:
    """Make typer build the plain runtime parameter where it applies (once per process). False: typer is not the
    version this was written for, and coerces every value itself."""
    if RuntimeParam is None or not hasattr(_TyperParameter, "get_runtime_param"):
        return False
    typer_own = _TyperParameter.get_runtime_param
    if getattr(typer_own, "plain", False):
        return True

    def get_runtime_param(self: _TyperParameter) -> RuntimeParam:
        if self._runtime_param is None:
            self._runtime_param = plain_runtime_param(self.type_descriptor)
        return typer_own(self)

    get_runtime_param.plain = True  # type: ignore[attr-defined]
    _TyperParameter.get_runtime_param = get_runtime_param  # type: ignore[method-assign]
    return True


__all__ = ["install"]
