"""The one rule for repo-controlled text on its way to a terminal, a CI log, an annotation or any report.

A model card, a file name, a tensor name or a pickle's global name is chosen by whoever published the repo. Printed
as it is, it can act instead of being shown:

* ESC sequences (CSI colours and cursor moves, OSC window titles, OSC 8 hyperlinks, OSC 52 clipboard writes), the
  C1 controls that start them without ESC (U+009B …), carriage returns that overwrite a line, NUL, and the Unicode
  bidirectional overrides of "Trojan Source" act on a terminal;
* a newline followed by `::error::`, `::add-mask::`, `::stop-commands::` (or the legacy `##[error]`) is obeyed by the
  GitHub Actions runner as a workflow command, and a long line wrapped by the terminal renderer can put such a
  prefix at the start of a line even without a newline;
* a lone surrogate (from a `\\udXXX` escape in JSON or YAML, or a file name that is not UTF-8) makes a strict
  UTF-8 encoder raise and strict JSON parsers reject the report.

`visible` turns every control character into a visible escape and replaces lone surrogates; `terminal_safe` also
makes line breaks visible and breaks workflow-command prefixes with a zero-width space (U+200B), so the text can be
printed anywhere. Both are cheap for the common case of plain printable text.
"""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Any

ZWSP = "\u200b"
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_SURROGATE = re.compile("[\ud800-\udfff]")
# `::` starts a workflow command (the runner trims the line first); `##[` is the older form.
_WORKFLOW = re.compile(r"::|##\[")


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: Any, keep: str = "\n\t") -> str:
    """`text` as a string with control characters (except those in `keep`) and bidi overrides shown as escapes,
    and lone surrogates replaced by U+FFFD."""
    s = "" if text is None else str(text)
    if s.isprintable() and not _SURROGATE.search(s):
        return s
    s = _SURROGATE.sub("\ufffd", s.replace("\r\n", "\n"))
    return "".join(
        ch if ch in keep or not (ch in _BIDI or unicodedata.category(ch) == "Cc") else _escape(ch) for ch in s
    )


def terminal_safe(text: Any, multiline: bool = False) -> str:
    """`text` safe to print on a terminal or in a CI log: no control character, no workflow command, and no line
    break unless `multiline` (a prefix is broken wherever it stands, so a kept line break cannot start one)."""
    s = visible(text, keep="\n\t" if multiline else "\t")
    return _WORKFLOW.sub(lambda m: m.group()[0] + ZWSP + m.group()[1:], s) if ("::" in s or "##[" in s) else s


def json_ready(value: Any) -> Any:
    """`value` as strict JSON can carry it: lone surrogates in strings (keys included) replaced by U+FFFD, NaN and
    infinities (which `json.dumps` writes as bare NaN / Infinity) as null."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value) if _SURROGATE.search(value) else value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {json_ready(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


__all__ = ["ZWSP", "json_ready", "terminal_safe", "visible"]
