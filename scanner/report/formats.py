"""The one registry of report formats: a new format is one renderer (a module or a template) plus one line here.

Renderers are named, not imported: the CLI checks `--format` without loading Jinja2, rich or cyclonedx."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Format:
    name: str
    renderer: str  # "module:function", imported on first use
    extension: str  # of the file CI writes (`originscan.<extension>`)
    catalogue: bool = True  # the renderer takes the rule catalogue after the reports
    terminal: bool = False  # the renderer takes `color` and `width`
    run_info: bool = False  # the renderer takes `run` (scanner/report/run_info.py: when, with what, which policy)

    def load(self) -> Any:
        module, function = self.renderer.split(":")
        return getattr(importlib.import_module(module), function)


_REGISTRY = (
    Format("text", "scanner.report.render:render_text", "txt", terminal=True),
    Format("json", "scanner.report.render:render_json", "json"),
    Format("markdown", "scanner.report.render:render_markdown", "md"),
    Format("sarif", "scanner.report.render:render_sarif", "sarif"),
    Format("html", "scanner.report.render:render_html", "html", run_info=True),
    Format("cyclonedx", "scanner.report.aibom:render_cyclonedx", "cdx.json", catalogue=False),  # AI-BOM
    Format("spdx", "scanner.report.aibom:render_spdx", "spdx.json", catalogue=False),  # AI-BOM
)
BY_NAME = {f.name: f for f in _REGISTRY}
FORMATS = tuple(BY_NAME)
FORMAT_CHOICES = f"{', '.join(FORMATS[:-1])} or {FORMATS[-1]}"  # as help texts list them
