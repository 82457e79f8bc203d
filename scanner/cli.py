"""The command line: thin wrappers over the pipeline. Errors end in one line on stderr and exit status 2."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from scanner import __version__
from scanner.atomic import write_text_atomic
from scanner.errors import SourceError, UsageError
from scanner.findings import Severity
from scanner.report.formats import FORMAT_CHOICES, FORMATS  # the one registry of formats (imports no renderer)
from scanner.report.run_info import ScanRun, scan_run
from scanner.results import TargetReport

if TYPE_CHECKING:  # imported where used: a command loads only what it needs
    from collections.abc import Iterator

    from scanner.knowledge import Upstream
    from scanner.policy import Policy
    from scanner.provenance.behaviour import BehaviourVerdict
    from scanner.provenance.canaries import Canary
    from scanner.provenance.index import Index
    from scanner.sources.interface import Snapshot

app = typer.Typer(
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, PowerShell
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="originscan: licence and provenance compliance for open models.",
)
index_app = typer.Typer(no_args_is_help=True, help="Register upstream models and their weight fingerprints.")
app.add_typer(index_app, name="index")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"originscan {__version__}")
        raise typer.Exit(0)


class Output:
    """How every command talks, set once by the options before the command (`originscan -q sweep …`)."""

    quiet = False  # no progress and no notes on stderr: only the report and errors
    verbose = False  # progress as one line per step even on a terminal; internal errors with their traceback
    color = "auto"  # auto: colour on a terminal unless NO_COLOR is set; always; never


def _progress_mode() -> str:
    """'bar' (a terminal), 'lines' (CI logs, pipes, --verbose) or 'none' (--quiet)."""
    if Output.quiet:
        return "none"
    if Output.verbose or not sys.stderr.isatty() or os.environ.get("CI"):
        return "lines"
    return "bar"


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", help="Print originscan's version and exit.", is_eager=True, callback=_print_version
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or notes on stderr, only results."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Progress as one line per step, even on a terminal."),
    color: str = typer.Option("auto", "--color", help="auto, always or never (NO_COLOR is honoured by auto)."),
) -> None:
    """originscan: licence and provenance compliance for open models."""
    Output.quiet, Output.verbose = quiet, verbose and not quiet
    Output.color = _check_choice(color, ("auto", "always", "never"), "--color")


def _say(line: str, err: bool = False) -> None:
    """One line that may carry repo-controlled text (a path, a tensor or model name): printed inert. Printed whole
    on one line, a `::` inside it cannot start a workflow command, so only a line that starts with one is broken
    (no invisible character in an ordinary message such as "hf:: malformed target")."""
    from scanner.report.sanitize import terminal_safe, visible

    text = visible(line, keep="\t")
    typer.echo(terminal_safe(text) if text.lstrip().startswith(("::", "##[")) else text, err=err)


def _write(text: str, output: Path | None) -> None:
    """stdout, or a file written atomically (no partial report is ever left behind)."""
    if output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    try:
        write_text_atomic(output, text)
    except OSError as exc:  # a read-only or missing folder, a full disk: the user's to fix, not a crash
        raise UsageError(f"cannot write {output}: {(exc.strerror or type(exc).__name__).lower()}") from None


def _render(reports: list[TargetReport], fmt: str, output: Path | None, run: ScanRun | None = None) -> str:
    from scanner.knowledge import catalogue
    from scanner.report.render import render

    auto = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    color = output is None and fmt == "text" and (Output.color == "always" or (Output.color == "auto" and auto))
    width = 120 if output is not None or not sys.stdout.isatty() else None
    return render(reports, fmt, catalogue(), version=__version__, color=color, width=width or 100, run=run)


def _policy(path: Path | None, fail_on: str | None, targets: list[str] | None = None) -> Policy:
    """The policy file: --policy, else the first .originscan.yml next to the first local target, in a folder above
    it up to its git root, or in the current directory (policy.policy_search_dirs); --fail-on takes precedence
    over its fail_on."""
    from scanner.policy import load_policy, parse_fail_on, policy_search_dirs

    pol = load_policy(str(path) if path else None, search_dirs=policy_search_dirs(targets))
    if fail_on is not None:
        pol.fail_on = parse_fail_on(fail_on)
    return pol


REPO_ID_HELP = "OWNER/NAME: the Hub repo a local folder is the published content of (who publishes it)."


def _repo_id(value: str | None, targets: list[str]) -> str | None:
    """--repo-id names one local folder's Hub repo: checked before anything is scanned."""
    if value is None:
        return None
    from scanner.evidence.publisher import repo_id_option

    if len(targets) != 1:
        raise UsageError("--repo-id names the Hub repo of one target; give exactly one")
    return repo_id_option(value)


def _check_choice(value: str, choices: tuple[str, ...], option: str) -> str:
    if value not in choices:
        raise UsageError(f"{option} must be one of {', '.join(choices)} (got {value!r})")
    return value


def exit_status(reports: list[TargetReport], fail_on: Severity | None) -> int:
    if any(r.error for r in reports) and all(r.error for r in reports):
        return 2
    if fail_on is None:
        return 0
    return 1 if any(f.severity >= fail_on for r in reports for f in r.active()) else 0


def _open_index(path: Path | None) -> Index:
    from scanner.provenance.index import Index

    try:
        return Index(path)
    except Exception as exc:  # sqlite3.DatabaseError, OSError
        raise UsageError(f"index {path or 'default'}: {exc}") from None


@app.command()
def scan(
    targets: list[str] = typer.Argument(..., help="Local folder, hf:OWNER/NAME[@REV] or github:OWNER/REPO[@REF]."),
    policy: Path | None = typer.Option(
        None, "--policy", help="Policy file (default: .originscan.yml next to the model, up to its git root, or here)."
    ),
    index: Path | None = typer.Option(None, "--index", help="Fingerprint index (SQLite)."),
    fmt: str = typer.Option("text", "--format", "-f", help=f"{FORMAT_CHOICES}."),
    output: Path | None = typer.Option(None, "-o", "--output", help="Write the report to FILE."),
    fail_on: str | None = typer.Option(None, "--fail-on", help="Lowest severity that fails (default high)."),
    repo_id: str | None = typer.Option(None, "--repo-id", help=REPO_ID_HELP),
    attest: Path | None = typer.Option(
        None, "--attest", help="Also write an in-toto statement of this scan to FILE (subjects: the files, sha256)."
    ),
    probe_results: list[Path] = typer.Option(
        [],
        "--probe-results",
        metavar="FILE",
        help="Behaviour verdicts on the scanned model (what `originscan probe -f json` wrote): lineage evidence.",
    ),
) -> None:
    """Scan model repos for licence, attribution and provenance problems."""
    from scanner.pipeline import scan_target

    _check_choice(fmt, FORMATS, "--format")
    behaviour = _probe_results(probe_results)
    repo_id = _repo_id(repo_id, targets)
    targets = _model_folders(targets)
    pol = _policy(policy, fail_on, targets)
    idx = _open_index(index) if (index or _default_index_exists()) else None
    run = scan_run(__version__, pol, idx)  # when, with what and against which policy: the HTML report says so
    reports = []
    usage_errors = []
    for t in targets:
        try:
            reports.append(scan_target(t, pol, idx, repo_id=repo_id, behaviour=behaviour))
        except UsageError as exc:
            usage_errors.append(str(exc))
    if usage_errors and not reports:
        raise UsageError(usage_errors[0])
    _write(_render(reports, fmt, output, run), output)
    if attest is not None:
        _attest(attest, reports, run)
    for e in usage_errors:
        _say(f"originscan: {e}", err=True)
    raise typer.Exit(2 if usage_errors else exit_status(reports, pol.fail_on))


def _probe_results(paths: list[Path]) -> list[BehaviourVerdict]:
    """`scan --probe-results FILE`: the behaviour verdicts in each file; one that does not read is a usage error."""
    if not paths:
        return []  # the statistics module loads numpy: not for a scan without probe results
    from scanner.provenance.behaviour import MAX_RESULTS_BYTES, read_probe_results

    out = []
    for path in paths:
        try:
            with path.open("rb") as f:
                raw = f.read(MAX_RESULTS_BYTES + 1)
            out += read_probe_results(raw.decode("utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise UsageError(f"--probe-results {path}: {why[:300]}") from None
    return out


def _attest(path: Path, reports: list[TargetReport], run: ScanRun) -> None:
    """`scan --attest FILE` (scanner/report/attest.py); an attestation that cannot be written is a usage error."""
    from scanner.report.attest import write_attestation

    try:
        write_attestation(path, reports, run)
    except ValueError as exc:
        raise UsageError(f"--attest {path}: nothing to attest ({str(exc)[:160]})") from None
    except OSError as exc:
        raise UsageError(f"--attest {path}: {exc.strerror or exc}") from None


def _model_folders(targets: list[str]) -> list[str]:
    """A local folder that holds no model itself but model folders below it (`scan models/`) stands for those
    folders, found as the Action finds them (sources/model_folders.py: a card, config or weights), and the user is
    told."""
    from scanner.sources.model_folders import all_model_folders, markers

    out: list[str] = []
    for t in targets:
        folder = Path(t)
        try:
            names = [e.name for e in os.scandir(folder) if e.is_file()] if folder.is_dir() else None
        except OSError:
            names = None  # unreadable: scanned as given, and said so by the scan
        if names is None or any(markers(names)):
            out.append(t)
            continue
        found = [f for f in all_model_folders(folder, []) if f]
        if not found:
            out.append(t)  # no model anywhere below: the scan of the folder itself says what is missing
            continue
        shown = ", ".join(found[:8]) + (f" and {len(found) - 8} more" if len(found) > 8 else "")
        if not Output.quiet:
            _say(
                f"originscan: {t} holds no model itself; scanning the {len(found)} model folders below it: {shown}",
                err=True,
            )
        out += [str(folder / f) for f in found]
    return out


class _Steps:
    """Progress of a long command: a bar with an ETA on a terminal (each step's line printed above it), one line
    per step otherwise (a CI log), nothing with --quiet. `total` None: not known in advance (a listing)."""

    def __init__(self, label: str, total: int | None, mode: str, out_err: bool = False):
        self.mode, self.err = mode, out_err
        self.bar = None
        if mode == "bar":
            from scanner.ci.sweep import progress_bar

            self.bar = progress_bar(label)
            self.task = self.bar.add_task("", total=total)

    def __enter__(self) -> _Steps:
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def line(self, text: str) -> None:
        if self.bar is not None:
            from scanner.report.sanitize import terminal_safe

            self.bar.console.print(terminal_safe(text), markup=False, highlight=False, soft_wrap=True)
            self.bar.advance(self.task)
        elif self.mode == "lines":
            _say(text, err=self.err)


def _default_index_exists() -> bool:
    from scanner.sources.cache import default_index_path

    return default_index_path().exists()


@contextlib.contextmanager
def _start_up_without_gc() -> Iterator[None]:
    """What a command imports and loads first lives until it exits: the cyclic collector's passes over it while it
    is made find nothing to free (0.035 s of CPU before a remote compare's first range request, on its critical
    path). Collection is off while it is made, gc.freeze() then keeps it out of later passes, and the collector is
    back as it was."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


# `compare`'s exit status per verdict: derived fails like a finding, inconclusive is never a pass (2 is usage).
COMPARE_STATUS = {"independent": 0, "derived": 1, "inconclusive": 3}


@app.command()
def compare(
    suspect: str = typer.Argument(..., help="The model under suspicion."),
    reference: str = typer.Argument(..., help="The model it may derive from."),
    fmt: str = typer.Option("text", "--format", "-f", help="text or json."),
) -> None:
    """Did SUSPECT's weights derive from REFERENCE's? Prints a verdict with its p-value and bytes read.

    Exit status: 0 independent, 1 derived, 3 inconclusive (nothing could be decided, e.g. no comparable weights),
    2 usage or input error. The JSON's "verdict" says which, and "exit_status" repeats the number."""
    with _start_up_without_gc():
        from concurrent.futures import ThreadPoolExecutor

        from scanner.sources.resolve import open_source  # not scanner.pipeline, whose checks cost 0.15 s to import

        _check_choice(fmt, ("text", "json"), "--format")

        def snapshot(target: str) -> Snapshot:
            # Local weights are not hashed whole here: that would read every byte the verdict claims not to need.
            return open_source(target, hash_weights=False).snapshot()

        # Side by side: a Hub snapshot is a chain of requests (model info, card, config), each a round trip, and
        # the comparison's own imports (numpy, the kernel) are made while they are out. The suspect's error, if
        # any, is the one raised.
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="originscan-snapshot") as pool:
            taken = [pool.submit(snapshot, target) for target in (suspect, reference)]
            from scanner.provenance.compare import compare_snapshots

            suspect_snap, reference_snap = (future.result() for future in taken)
    v = compare_snapshots(suspect_snap, reference_snap)
    status = COMPARE_STATUS.get(v.verdict, COMPARE_STATUS["inconclusive"])
    if fmt == "json":
        from scanner.report.sanitize import json_ready

        typer.echo(json.dumps(json_ready({**v.to_json(), "exit_status": status}), indent=2))
    else:
        frac = v.bytes_read / v.weight_bytes if v.weight_bytes else 0.0
        p = f"p = {v.p_value:.2e}" if v.log10_p_value > -300 else f"p < 1e-300 (log10 p = {v.log10_p_value:.0f})"
        typer.echo(f"verdict: {v.verdict}  (score {v.score:.2f}, {p})")
        typer.echo(f"  H0: {v.null_hypothesis}")
        _say(f"  why: {v.reason}")
        typer.echo(
            f"  read {v.bytes_read:,} of {v.weight_bytes:,} weight bytes ({100 * frac:.3f} %) in {v.seconds:.2f} s"
        )
        from scanner.provenance.result import IdenticalFiles, ResidualVectorMatch, TokenMatrixMatch, WeightsRead

        for e in v.evidence[:12]:
            if isinstance(e, (TokenMatrixMatch, ResidualVectorMatch)):  # tensor names come from the repo
                _say("  " + e.line())
            elif isinstance(e, (IdenticalFiles, WeightsRead)):
                typer.echo("  " + e.line())
    raise typer.Exit(status)


@app.command()
def probe(
    suspect: str = typer.Argument(
        ..., help="The model under suspicion (a local folder, a .gguf file or hf:OWNER/NAME[@REV])."
    ),
    reference: str = typer.Argument(..., help="The model it may have learned from."),
    null: list[str] = typer.Option(
        [], "--null", help="An independent model (not derived from REFERENCE) to calibrate against; repeat, 2+."
    ),
    canaries: Path | None = typer.Option(None, "--canaries", help="Owner canaries (JSON) of REFERENCE to test."),
    index: Path | None = typer.Option(None, "--index", help="Index whose canaries registered for REFERENCE apply."),
    sequences: int = typer.Option(64, "--sequences", min=3, max=4096, help="Probe texts."),
    tokens: int = typer.Option(64, "--tokens", min=4, max=4096, help="Tokens read of each probe text."),
    gguf_runtime: str = typer.Option(
        "auto", "--gguf-runtime", help="GGUF models: auto (llama.cpp when installed), llama.cpp or transformers."
    ),
    fmt: str = typer.Option("text", "--format", "-f", help="text or json."),
) -> None:
    """Does SUSPECT behave like it learned from REFERENCE (distilled, retrained, re-architected)? Runs both models
    (needs the extra originscan\\[probe]: torch, transformers; never a repo's own code) and tests idiosyncratic
    agreement, hidden-state CKA and owner canaries against independent models (--null). Exit status as for
    compare."""
    from scanner.provenance.canaries import CanaryStore, read_canary_file
    from scanner.provenance.probe import ProbeSettings
    from scanner.provenance.probe import probe as run_probe

    _check_choice(fmt, ("text", "json"), "--format")
    _check_choice(gguf_runtime, ("auto", "llama.cpp", "transformers"), "--gguf-runtime")
    owner_canaries = read_canary_file(canaries) if canaries else []
    if not owner_canaries and (index is not None or _default_index_exists()):
        idx = _open_index(index)
        reg = next((r for r in idx.models() if reference in (r.name, r.target)), None)
        owner_canaries = CanaryStore(idx.db).get(reg.name if reg else reference)
        idx.close()
    v = run_probe(
        suspect,
        reference,
        null,
        owner_canaries,
        ProbeSettings(sequences=sequences, tokens=tokens),
        progress=(lambda _: None) if Output.quiet else (lambda line: _say(line, err=True)),
        gguf_runtime=gguf_runtime,
    )
    status = COMPARE_STATUS.get(v.verdict, COMPARE_STATUS["inconclusive"])
    if fmt == "json":
        from scanner.report.sanitize import json_ready

        typer.echo(json.dumps(json_ready({**v.to_json(), "exit_status": status}), indent=2))
    else:
        typer.echo(f"behaviour verdict: {v.verdict}  (p = {v.p_value:.2e}, false-positive rate {v.alpha:g})")
        typer.echo(f"  H0: {v.null_hypothesis}")
        _say(f"  why: {v.reason}")
        for t in v.tests:
            p = f"p = {t.p_value:.2e}" if t.p_value is not None else "not calibrated"
            p = f"not judged, {t.uncalibrated}" if t.uncalibrated else p
            _say(f"  {t.name}: {p}; {t.detail}")
        typer.echo(f"  {len(v.null_models)} independent model(s); {v.seconds:.1f} s")
    raise typer.Exit(status)


@index_app.command("add")
def index_add(
    target: str = typer.Argument(..., help="The upstream model to register."),
    name: str | None = typer.Option(None, "--name", help="Registered name (default: the target)."),
    license: str | None = typer.Option(None, "--license", help="Its licence id (default: from its card)."),
    index: Path | None = typer.Option(None, "--index", help="Fingerprint index (SQLite)."),
    canaries: Path | None = typer.Option(
        None, "--canaries", help="Owner canaries (JSON: prompts and the model's own answers) for `probe` to test."
    ),
) -> None:
    """Fingerprint TARGET's weights and Python code and register it as an upstream."""
    from scanner.evidence.card import read_card
    from scanner.pipeline import open_snapshot
    from scanner.provenance.canaries import CanaryStore, read_canary_file
    from scanner.provenance.code import CodeStore
    from scanner.provenance.views import open_model

    owner_canaries = read_canary_file(canaries) if canaries else []  # a bad file fails before anything is read
    snap = open_snapshot(target)
    model = open_model(snap)
    try:
        if not model.structure.hidden and not snap.code:
            raise UsageError(
                f"{target}: no usable weights (safetensors or GGUF) or Python code to fingerprint"
                + (f" ({'; '.join(model.problems)[:200]})" if model.problems else "")
            )
        lic = license or read_card(snap).license
        idx = _open_index(index)
        if model.structure.hidden:
            new = idx.add(name or target, model, lic, target, snap.revision)
            _say(
                f"registered {name or target} ({lic or 'licence unknown'}): "
                f"{'fingerprinted' if new else 'fingerprint already stored'}, read {model.bytes_read:,} of "
                f"{model.weight_bytes:,} weight bytes"
            )
        if snap.code:  # a file's own licence header, when it has one, overrides this licence (provenance/code.py)
            n = CodeStore(idx.db).add(name or target, snap.code, lic)
            _say(f"registered the code of {name or target}: {n} Python file{'s' if n != 1 else ''}")
        if owner_canaries:
            CanaryStore(idx.db).put(name or target, owner_canaries)
            _say(f"registered {len(owner_canaries)} owner canaries for {name or target}")
    finally:
        model.close()


@index_app.command("list")
def index_list(
    index: Path | None = typer.Option(None, "--index", help="Fingerprint index (SQLite)."),
    fmt: str = typer.Option("text", "--format", "-f", help="text or json."),
) -> None:
    """List registered upstream models, and what the last `index update` could not fingerprint."""
    _check_choice(fmt, ("text", "json"), "--format")
    idx = _open_index(index)
    models = idx.models()
    if fmt == "json":
        states = idx.states()
        listed = [
            {
                "name": m.name,
                "license": m.license,
                "kind": idx.kind(m.fingerprint),
                "weight_bytes": m.weight_bytes,
                "target": m.target,
                "revision": m.revision,
                "added": m.added,
                "state": states[m.name].state if m.name in states else None,
                "detail": states[m.name].detail if m.name in states else None,
            }
            for m in models
        ]
        missing = [
            {"name": s.id, "state": s.state, "detail": s.detail} for s in states.values() if idx.model(s.id) is None
        ]
        doc = {"tool": "originscan", "version": __version__, "index": str(idx.path), "models": listed}
        typer.echo(json.dumps({**doc, "missing": missing}, indent=2))
        return
    if not models:
        typer.echo("no models registered (originscan index add TARGET, or originscan index update)")
    states = idx.states()
    for m in models:
        state = states.get(m.name)
        kind = idx.kind(m.fingerprint)
        note = f"\t{state.state}: {state.detail}" if state and state.state != "fingerprinted" else ""
        typer.echo(f"{m.name}\t{m.license or '-'}\t{kind}\t{m.weight_bytes:,} bytes\t{m.target}\t{m.added}{note}")
    for s in states.values():
        if idx.model(s.id) is None:
            typer.echo(f"{s.id}\t-\tmissing\t{s.state}: {s.detail}")


def _upstream_list(upstreams: Path | None, family: str | None, targets: list[str]) -> list[Upstream]:
    from scanner.knowledge import Upstream, knowledge_base, upstreams_from_file

    listed = upstreams_from_file(upstreams) if upstreams else list(knowledge_base().upstreams.values())
    if family:
        listed = [u for u in listed if u.family.lower() == family.lower()]
        if not listed:
            raise UsageError(f"--family {family}: no upstream of that family in the knowledge base")
    if not targets:
        return listed
    by_id = {i.lower(): u for u in listed for i in u.ids}
    chosen = []
    for t in targets:
        repo_id = t[3:] if t.lower().startswith("hf:") else t
        if "/" not in repo_id or "@" in repo_id:
            raise UsageError(f"{t}: expected an upstream as hf:OWNER/NAME (its latest revision is fingerprinted)")
        chosen.append(by_id.get(repo_id.lower()) or Upstream(repo_id, "", "unknown", {}))
    return chosen


@index_app.command("update")
def index_update(
    targets: list[str] | None = typer.Argument(
        None, help="Upstreams (hf:OWNER/NAME); default: every one in the knowledge base."
    ),
    family: str | None = typer.Option(None, "--family", help="Only the upstreams of this family (e.g. llama3.1)."),
    upstreams: Path | None = typer.Option(
        None,
        "--upstreams",
        envvar="ORIGINSCAN_UPSTREAMS",
        help="A YAML upstream list (the knowledge base's schema) to use "
        "instead of the knowledge base (an organisation's own models).",
    ),
    index: Path | None = typer.Option(None, "--index", help="Fingerprint index (SQLite)."),
    workers: int = typer.Option(4, "--workers", min=1, max=16, help="Upstreams fetched at once."),
) -> None:
    """Fingerprint upstreams from the Hub: weight-file hashes, safetensors headers and a few token rows by range
    reads (HF_TOKEN for gated ones, else a byte-identical mirror). Unchanged upstreams cost one revision check.
    Exit 0: complete; 1: some upstreams could not be fetched this time (the rest is stored); 2: none could, or the
    Hub stopped accepting connections (one line says so; what the index held is kept)."""
    from scanner.provenance.update import HubDown, summary, update_index

    chosen = _upstream_list(upstreams, family, targets or [])
    idx = _open_index(index)
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN") or None
    mode = _progress_mode()
    with _Steps("index update", len(chosen), mode) as steps:
        try:
            results = update_index(idx, chosen, token=token, workers=workers, log=steps.line)
        except HubDown as exc:  # one line, not one per upstream
            _say(f"originscan: index update: {exc}", err=True)
            raise typer.Exit(2) from None
    typer.echo(summary(results))
    usable = ("fingerprinted", "unchanged", "hashes-only", "gated", "unreadable")
    if results and not any(r.state in usable for r in results):
        raise UsageError("index update: no upstream could be fetched (see the lines above)")
    if any(r.state in ("unreachable", "unreadable") for r in results):
        raise typer.Exit(1)  # usable, but incomplete: worth retrying, not worth caching


@index_app.command("export")
def index_export(
    file: Path = typer.Argument(..., help="The pack to write."),
    index: Path | None = typer.Option(None, "--index", help="Fingerprint index (SQLite)."),
) -> None:
    """Write every registered upstream to a fingerprint pack (see README: Fingerprint packs)."""
    from scanner.provenance.pack import export_pack

    s = export_pack(_open_index(index), file)
    typer.echo(
        f"wrote {file}: {s.models} upstreams, {s.fingerprints} fingerprints, {s.bytes:,} bytes; "
        f"manifest sha256 {s.sha256}"
    )


@index_app.command("import")
def index_import(
    file: Path = typer.Argument(..., help="A fingerprint pack (from index export)."),
    sha256: str | None = typer.Option(
        None, "--sha256", help="Refuse the pack unless its manifest has this sha256 (printed by index export)."
    ),
    index: Path | None = typer.Option(None, "--index", help="Fingerprint index (SQLite)."),
) -> None:
    """Add a fingerprint pack's upstreams to the index; a corrupted or tampered pack is refused whole."""
    from scanner.provenance.pack import import_pack

    s = import_pack(_open_index(index), file, expect_sha256=sha256)
    typer.echo(f"imported {file}: {s.models} upstreams, {s.fingerprints} fingerprints; manifest sha256 {s.sha256}")


@index_app.command("key")
def index_key(
    upstreams: Path | None = typer.Option(
        None, "--upstreams", envvar="ORIGINSCAN_UPSTREAMS", help="The upstream list `index update` would use."
    ),
) -> None:
    """Print the cache key of an index: originscan's version and the knowledge base's hash."""
    from scanner.provenance.update import cache_key

    typer.echo(cache_key(upstreams))


ci_app = typer.Typer(no_args_is_help=True, help="Run originscan inside CI (GitHub Actions).")
app.add_typer(ci_app, name="ci")


@ci_app.command("pull-request")
def ci_pull_request(
    paths: str | None = typer.Option(
        None,
        "--paths",
        envvar="ORIGINSCAN_PATHS",
        help="Folders holding model folders (newline/comma/space separated; default: the whole checkout).",
    ),
    event: Path | None = typer.Option(
        None, "--event", envvar="GITHUB_EVENT_PATH", help="Event payload (none: scan every model folder in scope)."
    ),
    workspace: Path = typer.Option(Path("."), "--workspace", envvar="GITHUB_WORKSPACE", help="The checkout."),
    policy: str | None = typer.Option(None, "--policy", envvar="ORIGINSCAN_POLICY", help="Policy file."),
    index: Path | None = typer.Option(None, "--index", help="Fingerprint index (SQLite)."),
    fail_on: str | None = typer.Option(
        None,
        "--fail-on",
        envvar="ORIGINSCAN_FAIL_ON",
        help="Lowest severity of a NEW finding that fails (default high).",
    ),
    formats: str = typer.Option(
        "markdown,json",
        "--formats",
        envvar="ORIGINSCAN_FORMATS",
        help=f"Report files to write: {FORMAT_CHOICES}.",
    ),
    comment: str = typer.Option(
        "true", "--comment", envvar="ORIGINSCAN_COMMENT", help="true/false: keep one PR comment up to date."
    ),
    sarif: str | None = typer.Option(None, "--sarif", envvar="ORIGINSCAN_SARIF", help="Write SARIF to FILE."),
    output_dir: Path | None = typer.Option(
        None,
        "--output-dir",
        envvar="ORIGINSCAN_OUTPUT_DIR",
        help="Where report files go (default $RUNNER_TEMP/originscan-reports).",
    ),
    summary: str | None = typer.Option(
        None, "--summary", envvar="GITHUB_STEP_SUMMARY", help="Markdown summary file (appended)."
    ),
    api_url: str | None = typer.Option(None, "--api-url", envvar="GITHUB_API_URL"),
    repo: str | None = typer.Option(None, "--repo", envvar="GITHUB_REPOSITORY", help="OWNER/NAME."),
) -> None:
    """Pull-request mode: scan the model folders a PR changed; only NEW findings fail. The token is read from
    ORIGINSCAN_GITHUB_TOKEN (or GITHUB_TOKEN), never from the command line."""
    from scanner.ci.github import PullRequestOptions, run_pull_request, split_inputs, truthy

    options = PullRequestOptions(
        workspace,
        event_path=str(event) if event else None,
        policy=policy or None,
        fail_on=fail_on or None,
        formats=tuple(split_inputs(formats)),
        comment=truthy(comment),
        sarif_path=sarif or None,
        paths=tuple(split_inputs(paths)),
        output_dir=output_dir,
        summary_path=summary or None,
        api_url=api_url or None,
        repo=repo or None,
        token=os.environ.get("ORIGINSCAN_GITHUB_TOKEN") or os.environ.get("GITHUB_TOKEN") or None,
    )
    idx = _open_index(index) if (index or _default_index_exists()) else None  # ORIGINSCAN_INDEX names one
    raise typer.Exit(run_pull_request(options, index=idx))


@app.command()
def sweep(
    orgs: list[str] = typer.Argument(..., help="hf:ORG / github:ORG (or, with --merge, shard JSON reports)."),
    policy: Path | None = typer.Option(None, "--policy", help="Policy file (default: ./.originscan.yml)."),
    index: Path | None = typer.Option(None, "--index", help="Fingerprint index (SQLite)."),
    fmt: str = typer.Option("text", "--format", "-f", help=f"{FORMAT_CHOICES}."),
    output: Path | None = typer.Option(None, "-o", "--output", help="Write the report to FILE."),
    fail_on: str | None = typer.Option(
        None, "--fail-on", help="Lowest severity that fails; with history, only NEW findings count."
    ),
    shard: str | None = typer.Option(None, "--shard", help="K/N: scan only this job's share of the repos."),
    workers: int = typer.Option(8, "--workers", min=1, max=64, help="Repos scanned at once."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    history: Path | None = typer.Option(None, "--history", help="Run history (SQLite; default in the cache)."),
    no_history: bool = typer.Option(False, "--no-history", help="Keep no history (a shard of a matrix)."),
    merge: bool = typer.Option(False, "--merge", help="ORGS are shard JSON reports to merge; nothing is scanned."),
    diff_json: Path | None = typer.Option(None, "--diff-json", help="Write new/fixed/unchanged as JSON."),
    tracking_issue: bool = typer.Option(
        False, "--tracking-issue", help="New high+ findings open or update one issue (GITHUB_TOKEN, GITHUB_REPOSITORY)."
    ),
) -> None:
    """Every model repo of one or more organisations, with history: what is new, fixed and unchanged."""
    from scanner.ci.history import default_history_path, merge_reports
    from scanner.ci.sweep import new_finding_fails, publish_diff, record_and_diff, screen_note
    from scanner.ci.sweep import sweep as run_sweep
    from scanner.shards import parse_shard

    _check_choice(fmt, FORMATS, "--format")
    pol = _policy(policy, fail_on)
    db = None if no_history else (history or default_history_path())
    if tracking_issue and db is None:
        raise UsageError("--tracking-issue needs history (drop --no-history)")
    if merge:
        if shard:
            raise UsageError("--merge and --shard do not go together")
        reports = merge_reports(orgs)
        diff = record_and_diff(db, reports) if db else None
    else:
        idx = _open_index(index) if (index or _default_index_exists()) else None
        note = screen_note(idx)
        if note:
            _say(note, err=True)
        reports, diff = run_sweep(
            orgs,
            policy=pol,
            index=idx,
            history_db=db,
            shard=parse_shard(shard),
            workers=workers,
            quiet=quiet or Output.quiet,
        )
    _write(_render(reports, fmt, output), output)
    for r in reports:  # one line each for what was not listed or not scanned, whatever the report's format
        if r.error:
            _say(f"originscan sweep: could not {'list' if r.target in orgs else 'scan'} {r.error}", err=True)
    if reports and all(r.error for r in reports):
        raise typer.Exit(2)  # nothing was checked: never a pass, history or not
    if diff is None:
        raise typer.Exit(exit_status(reports, pol.fail_on))
    for line in publish_diff(diff, diff_json=diff_json, tracking_issue=tracking_issue):
        _say(line, err=True)
    raise typer.Exit(1 if pol.fail_on is not None and new_finding_fails(diff, pol.fail_on) else 0)


@app.command()
def watch(
    reports: list[str] | None = typer.Argument(None, help="With --merge: the shards' JSON reports."),
    index: Path | None = typer.Option(None, "--index", help="Fingerprint index whose models are watched."),
    pack: Path | None = typer.Option(None, "--pack", help="Watch the models of this fingerprint pack instead."),
    pack_sha256: str | None = typer.Option(None, "--pack-sha256", help="The pack's pinned manifest sha256."),
    state: Path | None = typer.Option(None, "--state", help="Cursor and judged repos (SQLite; default in the cache)."),
    budget: int = typer.Option(20000, "--budget", min=1, help="Most HTTP requests this run may send."),
    since: str | None = typer.Option(None, "--since", help="ISO date: ignore repos last modified before it."),
    owner: list[str] | None = typer.Option(None, "--owner", help="An organisation whose repos are yours (repeatable)."),
    shard: str | None = typer.Option(None, "--shard", help="K/N: judge only this job's share of the repos."),
    workers: int = typer.Option(4, "--workers", min=1, max=64, help="Repos judged at once."),
    fmt: str = typer.Option("text", "--format", "-f", help="text or json."),
    output: Path | None = typer.Option(None, "-o", "--output", help="Write the report to FILE."),
    merge: bool = typer.Option(False, "--merge", help="Join shard JSON reports; nothing is listed."),
    tracking_issues: bool = typer.Option(
        False, "--tracking-issues", help="One GitHub issue per undeclared suspect (GITHUB_TOKEN, GITHUB_REPOSITORY)."
    ),
    probe: bool = typer.Option(
        False,
        "--probe",
        help="Run each suspect, and repos the weights cleared, against the watched model's canaries and behaviour "
        "(needs originscan\\[probe]).",
    ),
    probe_null: list[str] | None = typer.Option(
        None, "--probe-null", help="With --probe: an independent model for the behaviour test's null; repeat, 2+."
    ),
    probe_max_gb: float = typer.Option(
        2.0, "--probe-max-gb", min=0.0, help="With --probe: the most safetensors GB downloaded for one repo."
    ),
    probe_max_repos: int = typer.Option(
        100, "--probe-max-repos", min=0, help="With --probe: cleared repos run against canaries, at most, per run."
    ),
) -> None:
    """Public Hub repos created or changed since the last run that derive from the watched models.

    Exit status 1 when an undeclared derivative was found (by its weights, or with --probe by its behaviour), 2 when
    the Hub's listing could not be read at all, 0 otherwise."""
    import datetime as dt
    import tempfile

    from scanner.report.watch import watch_text
    from scanner.watch import COULD_NOT_LIST, Outcome, WatchState, run_watch
    from scanner.watch_report import load_report, merge_reports

    _check_choice(fmt, ("text", "json"), "--format")
    if probe_null and not probe:
        raise UsageError("--probe-null goes with --probe")
    if probe:
        from scanner.watch_probe import check_nulls, require_extra

        if merge:
            raise UsageError("--probe and --merge do not go together (each shard probes its own suspects)")
        require_extra()  # one line, exit 2, before anything is listed
        check_nulls(probe_null or [])
    if merge:
        if shard:
            raise UsageError("--merge and --shard do not go together")
        report = merge_reports([load_report(p) for p in reports or []])
    else:
        if reports:
            raise UsageError("watch takes no arguments without --merge (the watched models come from the index)")
        from scanner.shards import parse_shard

        when = None
        if since:
            try:
                when = dt.datetime.fromisoformat(since)
            except ValueError:
                raise UsageError(f"--since {since!r}: expected an ISO date such as 2026-11-01") from None
            when = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
        with tempfile.TemporaryDirectory(prefix="originscan-watch-") as tmp:
            if pack is not None:
                from scanner.provenance.pack import import_pack

                idx = _open_index(index or Path(tmp) / "watched.sqlite")
                import_pack(idx, pack, pack_sha256)
            else:
                idx = _open_index(index)
            owner_canaries = _watched_canaries(idx) if probe else {}
            if probe and not any(owner_canaries.values()) and not probe_null:
                raise UsageError(
                    "watch --probe: no watched model has canaries (index add … --canaries FILE) and no "
                    "--probe-null models were given: nothing to test"
                )
            st = WatchState(state)
            steps = _Steps("watch", None, _progress_mode(), out_err=True)
            outcomes: list[Outcome] = []

            def judged(o: Outcome) -> None:  # one line per judged repo in a CI log, the bar's count on a terminal
                what = "SUSPECT" if o.suspects else o.stage
                steps.line(f"originscan watch: {o.repo}: {what}: {o.reason}"[:300])
                if probe:
                    outcomes.append(o)

            try:
                with steps:
                    report = run_watch(
                        idx,
                        st,
                        budget=budget,
                        shard=parse_shard(shard),
                        workers=workers,
                        since=when,
                        owners=owner or (),
                        token=os.environ.get("HF_TOKEN") or None,
                        progress=judged,
                    )
                if probe:
                    from scanner.watch_probe import ProbeOptions, probe_report

                    options = ProbeOptions(
                        max_bytes=int(probe_max_gb * 1e9),
                        max_repos=probe_max_repos,
                        nulls=tuple(probe_null or ()),
                        token=os.environ.get("HF_TOKEN") or None,
                    )
                    quiet = Output.quiet
                    probe_report(
                        report,
                        outcomes,
                        owner_canaries,
                        options,
                        progress=lambda line: None if quiet else _say(f"originscan watch: {line}"[:300], err=True),
                    )
            finally:
                st.close()
                idx.close()
    _write(json.dumps(report.to_json(), indent=2) if fmt == "json" else watch_text(report), output)
    stopped = report.stopped or ""
    if COULD_NOT_LIST in stopped:
        _say(f"originscan watch: {stopped}", err=True)
        if not report.stats.listed:
            raise typer.Exit(2)  # nothing was looked at: not "no suspects"
    if tracking_issues:
        from scanner.ci.actions import run_url
        from scanner.ci.watch_issues import file_issues

        for res in file_issues(
            report.suspects,
            os.environ.get("GITHUB_API_URL") or "https://api.github.com",
            os.environ.get("GITHUB_TOKEN"),
            os.environ.get("GITHUB_REPOSITORY", ""),
            run_url=run_url(),
            log=lambda line: _say(line, err=True),
        ):
            _say(f"originscan watch: issue #{res['number']} {res['action']} for {res['repo']}", err=True)
    raise typer.Exit(1 if report.undeclared or report.undeclared_behaviour else 0)


def _watched_canaries(idx: Index) -> dict[str, list[Canary]]:
    """The owner canaries registered for each watched model (`index add … --canaries`)."""
    from scanner.provenance.canaries import CanaryStore
    from scanner.watch import watched_models

    store = CanaryStore(idx.db)
    return {w.name: store.get(w.name) for w in watched_models(idx)}


@app.command()
def attribution(
    target: str = typer.Argument(..., help="The derivative model."),
    repo_id: str | None = typer.Option(None, "--repo-id", help=REPO_ID_HELP),
) -> None:
    """Print the NOTICE / attribution text the derivative must ship."""
    from scanner.attribution import attribution_blocks
    from scanner.evidence.publisher import apply_repo_id
    from scanner.pipeline import open_snapshot
    from scanner.report.render import render_attribution

    repo_id = _repo_id(repo_id, [target])
    snap = open_snapshot(target)
    if repo_id:
        apply_repo_id(snap, repo_id)
    blocks = attribution_blocks(snap, _policy(None, None, [target]))
    if not blocks:
        typer.echo("no known upstream in this model's lineage: no attribution obligations found")
        return
    typer.echo(render_attribution(blocks))


@app.command()
def rules(fmt: str = typer.Option("text", "--format", "-f", help="text, json or markdown.")) -> None:
    """List every rule: id, default severity, one-line doc (json: also its title and fix; markdown: the README's
    rule table)."""
    from scanner.knowledge import catalogue

    _check_choice(fmt, ("text", "json", "markdown"), "--format")
    if fmt == "markdown":
        from scanner.report.readme import rule_table

        typer.echo(rule_table(catalogue().values()), nl=False)
        return
    if fmt == "json":
        doc = [
            {"id": r.id, "severity": r.severity.name, "title": r.title, "doc": r.doc, "fix": r.fix}
            for r in catalogue().values()
        ]
        typer.echo(json.dumps({"tool": "originscan", "version": __version__, "rules": doc}, indent=2))
        return
    for r in catalogue().values():
        typer.echo(f"{r.id:36} {r.severity.name:9} {r.doc}")


@app.command()
def demo(
    fmt: str = typer.Option("text", "--format", "-f", help=f"{FORMAT_CHOICES}."),
) -> None:
    """Run the main job on the bundled example repos."""
    from scanner.demo import examples_dir, run_demo
    from scanner.policy import load_policy

    _check_choice(fmt, FORMATS, "--format")
    policy_file = examples_dir() / ".originscan.yml"
    policy = load_policy(str(policy_file) if policy_file.is_file() else None)
    run = scan_run(__version__, policy, "a throw-away index of examples/upstreams")
    reports = run_demo(log=None if Output.quiet else lambda line: _say(line, err=True))
    _write(_render(reports, fmt, None, run), None)


INTERRUPTED = 130  # 128 + SIGINT, as shells report a command Ctrl-C stopped


def _interrupted() -> None:
    """Say so and leave now: threads still blocked in a socket read are not waited for. Every store is SQLite
    (a transaction not committed is rolled back) and reports are written atomically, so nothing is left half-done."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os.write(2, b"originscan: interrupted\n" + (b"\x1b[?25h" if sys.stderr.isatty() else b""))  # cursor back
    os._exit(INTERRUPTED)


def _on_sigint(signum: int, frame: object) -> None:
    """First Ctrl-C: stop every worker (scanner.interrupt.STOP) and unwind the main thread, with a one-second
    deadline; a second Ctrl-C leaves at once."""
    from scanner import interrupt

    if interrupt.STOP.is_set():
        _interrupted()
    interrupt.STOP.set()
    deadline = threading.Timer(1.0, _interrupted)
    deadline.daemon = True
    deadline.start()
    raise KeyboardInterrupt


def _click_error(exc: BaseException) -> int | None:
    """A click usage error (click's own or the copy typer bundles, whichever version): the command's usage line,
    where to find help and the message, on stderr. Returns its exit status (2), or None for anything else."""
    message, code = getattr(exc, "format_message", None), getattr(exc, "exit_code", None)
    if not callable(message) or not isinstance(code, int):
        return None
    ctx = getattr(exc, "ctx", None)
    if type(exc).__name__ == "NoArgsIsHelpError":  # a bare `originscan` / `originscan index`: the help itself
        typer.echo(message(), err=True)
        return code
    if ctx is not None:
        typer.echo(ctx.get_usage(), err=True)
        typer.echo(f"Try '{ctx.command_path} -h' for help.", err=True)
    _say(f"originscan: error: {message()}", err=True)
    return code


def main() -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _on_sigint)
    try:
        from scanner.cli_params import install

        install()  # str, Path and flag values coerced without pydantic
        rc = app(standalone_mode=False)
        if rc == INTERRUPTED:  # typer turns KeyboardInterrupt into Exit(130)
            _interrupted()
        sys.exit(rc if isinstance(rc, int) else 0)
    except typer.Exit as exc:
        if exc.exit_code == INTERRUPTED:
            _interrupted()
        sys.exit(exc.exit_code)
    except (UsageError, SourceError) as exc:
        _say(f"originscan: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        _interrupted()
    except Exception as exc:  # click usage errors, and the unexpected: one line, never a traceback
        if isinstance(exc.__context__, KeyboardInterrupt) or type(exc).__name__ == "Abort":
            _interrupted()  # older click turns Ctrl-C into Abort
        code = _click_error(exc)
        if code is not None:
            sys.exit(code)
        if os.environ.get("ORIGINSCAN_DEBUG"):
            raise
        _say(f"originscan: internal error: {type(exc).__name__}: {str(exc)[:200]}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
