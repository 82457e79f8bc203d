"""Issue 26 (start-up): a command imports only what it needs. Not timed: each test runs the command in a fresh
interpreter and checks which modules it left in sys.modules, next to what the command printed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ggufs import Q, write_gguf
from safetensors.numpy import save_file
from synthetic import base_model

from scanner import cli_params

REPO_ROOT = Path(__file__).resolve().parents[1]

# Modules a scan loads only when it compares weights (the search, the fingerprint index, the comparison, numpy) or
# reads a GGUF file (its reader and the gguf package). Validating a safetensors header needs none of them.
WEIGHT_READERS = (
    "numpy",
    "gguf",
    "scanner.provenance.gguf",
    "scanner.provenance.search",
    "scanner.provenance.index",
    "scanner.provenance.compare",
)
HEAVY = ("numpy", "huggingface_hub", "pydantic", "jinja2", "rich", "yaml", "scanner.pipeline", *WEIGHT_READERS)


def run_cli(args: list[str], env: dict[str, str], watch: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """`originscan ARGS` in a fresh interpreter: (its stdout lines before the module list, the modules of `watch`
    it imported)."""
    code = (
        "import json, sys\n"
        f"sys.argv = ['originscan', *{args!r}]\n"
        "from scanner.cli import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    print('exit', e.code)\n"
        f"print(json.dumps(sorted(m for m in {watch!r} if m in sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT, env=env
    )
    lines = out.stdout.splitlines()
    assert lines, out.stderr
    return lines[:-1], json.loads(lines[-1])


def scan_env(tmp_path: Path) -> dict[str, str]:
    """An empty cache and no default fingerprint index."""
    return {**os.environ, "ORIGINSCAN_CACHE": str(tmp_path / "cache"), "ORIGINSCAN_INDEX": str(tmp_path / "none.db")}


def model_folder(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "README.md").write_text("---\nlicense: apache-2.0\n---\n# a model\n")
    return folder


def test_version_imports_no_scanner_and_no_heavy_library(tmp_path):
    printed, imported = run_cli(["--version"], scan_env(tmp_path), HEAVY)
    assert printed[0].startswith("originscan ") and printed[1] == "exit 0"
    assert imported == [], f"--version imported {imported}"


def test_a_safetensors_scan_without_an_index_loads_no_weight_comparison_and_no_gguf_reader(tmp_path):
    folder = model_folder(tmp_path, "st")
    save_file(base_model(1, d=64, vocab=512, layers=1), str(folder / "model.safetensors"))
    report = tmp_path / "r.json"
    for _ in range(2):  # the first scan and the re-scan (its snapshot cached)
        printed, imported = run_cli(["-q", "scan", str(folder), "-f", "json", "-o", str(report)], scan_env(tmp_path),
                                    WEIGHT_READERS)  # fmt: skip
        assert printed == ["exit 0"] and imported == [], imported
        rules = [f["rule"] for t in json.loads(report.read_text())["targets"] for f in t["findings"]]
        assert "weights.not_compared" in rules  # the weights were seen, and said to be uncompared


def test_a_gguf_scan_still_reads_the_gguf_header(tmp_path):
    """The lazy import is not a skipped read: a GGUF repo's header licence is found (its reader was loaded)."""
    folder = model_folder(tmp_path, "gg")
    write_gguf(folder / "model.gguf", base_model(1, d=64, vocab=512, layers=1), Q.F16,
               metadata={"general.license": "llama3"})  # fmt: skip
    report = tmp_path / "r.json"
    printed, imported = run_cli(["-q", "scan", str(folder), "-f", "json", "-o", str(report)], scan_env(tmp_path),
                                WEIGHT_READERS)  # fmt: skip
    assert {"gguf", "scanner.provenance.gguf", "numpy"} <= set(imported)
    findings = [f for t in json.loads(report.read_text())["targets"] for f in t["findings"]]
    assert any("llama3" in json.dumps(f).lower() for f in findings), findings


# scanner/cli_params.py takes over option coercion only from the typer it was written for (0.29's internals); with
# another typer every value goes through typer's own pydantic coercion, which these tests then cannot hold it to.
PLAIN_OPTIONS = cli_params.RuntimeParam is not None
needs_plain_options = pytest.mark.skipif(not PLAIN_OPTIONS, reason="typer without 0.29's coercion internals")


@needs_plain_options
def test_plain_option_coercion_gives_what_typer_gives(tmp_path):
    """scanner/cli_params.py coerces str, Path and flag values without pydantic: for every parameter of every
    command it takes over, each value gives what typer's own coercion gives (the value, or the same error)."""
    import typer.main
    from typer._click import Context
    from typer._coercion import build_runtime_param

    from scanner.cli import app
    from scanner.cli_params import plain_runtime_param

    readable = tmp_path / "f.txt"
    readable.write_text("x")
    singles = ["", "x", " a b ", "-", "hf:o/n@main", str(tmp_path), str(readable), str(tmp_path / "missing"), "a\x00b"]
    values = [*singles, Path("."), readable, b"bytes", 7, tuple(singles[:4]), [readable, "x"], ("x", b"y"), ()]

    def outcome(runtime, value, param, ctx):
        try:
            return "ok", runtime.coerce(value, param=param, ctx=ctx)
        except Exception as exc:
            return type(exc).__name__, str(exc)

    taken = 0
    commands = [typer.main.get_command(app)]
    while commands:
        command = commands.pop()
        commands += getattr(command, "commands", {}).values()
        ctx = Context(command)
        for param in [*command.params, command.get_help_option(ctx)]:
            plain = plain_runtime_param(param.type_descriptor)
            if plain is None:
                continue
            taken += 1
            own = build_runtime_param(param.type_descriptor)
            for value in [None, True, False, *values]:
                assert outcome(plain, value, param, ctx) == outcome(own, value, param, ctx), (param.name, value)
    assert taken >= 40  # every str/Path option of every command, and the flags


@needs_plain_options
def test_int_options_keep_typers_coercion():
    """An int option with a range is not taken over (typer checks the range): `--workers 0` is refused as before."""
    import typer.main

    from scanner.cli import app
    from scanner.cli_params import plain_runtime_param

    sweep = typer.main.get_command(app).commands["sweep"]
    workers = next(p for p in sweep.params if p.name == "workers")
    assert plain_runtime_param(workers.type_descriptor) is None
    out = subprocess.run([sys.executable, "-m", "scanner.cli", "sweep", "--workers", "0", "hf:x"], capture_output=True,
                         text=True, timeout=120, cwd=REPO_ROOT)  # fmt: skip
    assert out.returncode == 2 and "Invalid value for '--workers'" in out.stderr, out.stderr
    assert "greater than or equal to 1" in out.stderr, out.stderr


# What the re-scan of an unchanged local folder does without: option values need no pydantic (scanner/cli_params.py),
# the knowledge base and the card's front matter come from the parsed cache (scanner/parsed_cache.py), so neither
# PyYAML nor huggingface_hub's card data is imported, and nothing talks to the Hub.
RESCAN_SKIPS = (
    *(("pydantic", "typer._adapters") if PLAIN_OPTIONS else ()),
    *("yaml", "huggingface_hub", "filelock", "requests", "httpx", "scipy"),
)


def test_a_rescan_loads_no_pydantic_yaml_or_hub_client(tmp_path):
    folder = model_folder(tmp_path, "st")
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 64, "vocab_size": 512}))
    save_file(base_model(1, d=64, vocab=512, layers=1), str(folder / "model.safetensors"))
    env = scan_env(tmp_path)
    first, imported = run_cli(["scan", str(folder)], env, RESCAN_SKIPS)
    assert {"yaml", "huggingface_hub"} <= set(imported)  # the first scan parses the card and the knowledge base
    assert "pydantic" not in imported
    again, imported = run_cli(["scan", str(folder)], env, RESCAN_SKIPS)
    assert imported == [], f"the re-scan imported {imported}"
    assert again == first and "weights.not_compared" in "\n".join(again)  # the same report


def test_a_json_or_sarif_rescan_loads_no_template_engine_or_rich(tmp_path):
    """JSON and SARIF are built as data: Jinja2 and rich load only for a template or a text report."""
    folder = model_folder(tmp_path, "st")
    save_file(base_model(1, d=64, vocab=512, layers=1), str(folder / "model.safetensors"))
    env = scan_env(tmp_path)
    watch = ("jinja2", "markupsafe", "rich", *RESCAN_SKIPS)
    for fmt in ("json", "sarif", "json"):
        report = tmp_path / f"r.{fmt}"
        printed, imported = run_cli(["-q", "scan", str(folder), "-f", fmt, "-o", str(report)], env, watch)
        assert printed == ["exit 0"] and json.loads(report.read_text())
        assert not {"jinja2", "markupsafe", "rich"} & set(imported), imported
    assert imported == [], imported  # the second json scan: nothing heavy at all
    printed, imported = run_cli(["scan", str(folder)], env, watch)
    assert {"jinja2", "rich"} <= set(imported) and any("weights.not_compared" in line for line in printed)


def test_an_indexed_rescan_takes_the_verdict_from_the_cache_without_numpy(tmp_path):
    """With an index, the first scan compares the weights (numpy, the search); the re-scan of the unchanged folder
    takes the verdict from the verdict cache, and opening the index and listing its upstreams load no numpy
    (the stored-fingerprint model lives in scanner/provenance/stored.py)."""
    upstream = tmp_path / "up"
    upstream.mkdir()
    save_file(base_model(2, d=64, vocab=512, layers=1), str(upstream / "model.safetensors"))
    folder = model_folder(tmp_path, "st")
    save_file(base_model(1, d=64, vocab=512, layers=1), str(folder / "model.safetensors"))
    env = {**scan_env(tmp_path), "ORIGINSCAN_INDEX": str(tmp_path / "index.sqlite")}
    printed, _ = run_cli(["-q", "index", "add", str(upstream)], env, ())
    assert printed[-1] == "exit 0", printed
    first, imported = run_cli(["scan", str(folder)], env, ("numpy", *WEIGHT_READERS, *RESCAN_SKIPS))
    assert {"numpy", "scanner.provenance.compare"} <= set(imported)  # compared: the verdict is computed
    again, imported = run_cli(["scan", str(folder)], env, ("numpy", *WEIGHT_READERS, *RESCAN_SKIPS))
    assert imported == ["scanner.provenance.index"], imported  # the index opened, nothing decoded or compared
    assert again == first
