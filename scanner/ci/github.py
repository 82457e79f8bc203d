"""Pull-request mode for GitHub Actions.

    event (GITHUB_EVENT_PATH) ─▶ base/head SHAs ─▶ git diff --name-status -z -M base...head
        ─▶ changed model folders ─▶ scan each at head (the checkout) and at base (`git archive` into a temp dir)
        ─▶ head findings marked "new" / "existing" ─▶ one PR comment (hidden marker, updated in place),
           $GITHUB_STEP_SUMMARY, ::error/::warning annotations, SARIF, $GITHUB_OUTPUT ─▶ exit status

Only NEW findings at or above `fail_on` fail the check. The workspace is never modified. Everything that comes
from a repo (card text, file names) is escaped before it reaches Markdown or a workflow command, and the token is
never printed. A comment API that refuses (403 from a fork, 404, network) costs a `::warning::`, not the report.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tarfile
import tempfile
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from scanner.atomic import write_text_atomic
from scanner.ci.actions import BEST_EFFORT_RETRY, REPO_RE, append, run_url, workflow_command
from scanner.errors import SourceError, UsageError
from scanner.findings import Severity, match_keys
from scanner.knowledge import finding
from scanner.report.ci import annotation_commands, could_not_run, pr_comment
from scanner.report.formats import BY_NAME
from scanner.report.sanitize import terminal_safe
from scanner.results import TargetReport
from scanner.sources.github import GitHubAPI
from scanner.sources.model_folders import Tree, all_model_folders, worktree

if TYPE_CHECKING:  # annotations only: these are slow to import or import the pipeline
    from git import Repo

    from scanner.policy import Policy
    from scanner.provenance.index import Index

MARKER = "<!-- originscan-report -->"  # the first line of templates/pr_comment.md.j2
SEVERITIES = sorted(Severity, reverse=True)
_SHA_RE = re.compile(r"^[0-9a-fA-F]{7,64}$")

TOKENIZER_NAMES = {
    "tokenizer.model",
    "spiece.model",
    "vocab.json",
    "merges.txt",
    "vocab.txt",
    "sentencepiece.bpe.model",
}


def _safe(text: Any) -> str:
    """A file name or other repo-derived text for a plain log line (no newlines, no control characters, no
    workflow command)."""
    return terminal_safe(text)


def upsert_comment(api: GitHubAPI, repo: str, number: int, body: str) -> tuple[str, int | None]:
    """Update the PR comment carrying MARKER (ours, preferring a bot's) or create it; ("updated"|"created", id)."""
    mine = [
        c
        for c in api.iterate(f"/repos/{repo}/issues/{number}/comments", {"per_page": "100"})
        if (c.get("body") or "").lstrip().startswith(MARKER)
    ]
    mine.sort(key=lambda c: ((c.get("user") or {}).get("type") != "Bot", c.get("id") or 0))
    if mine:
        cid = mine[0]["id"]
        api.send("PATCH", f"/repos/{repo}/issues/comments/{cid}", {"body": body})
        return "updated", cid
    made = api.send("POST", f"/repos/{repo}/issues/{number}/comments", {"body": body})
    return "created", (made or {}).get("id")


# -- the event and git -------------------------------------------------------------------------------------------
@dataclass
class Event:
    kind: str  # "pull_request" | "push" | "full"
    base: str | None = None
    head: str | None = None
    number: int | None = None
    fork: bool = False
    base_repo: str | None = None  # the pull request's base repository (OWNER/NAME): who publishes what it merges


def read_event(event_path: str | os.PathLike[str] | None) -> Event:
    """The base and head of a pull_request (or push) event; raises UsageError with one clear line."""
    if not event_path:
        return Event("full")
    p = Path(event_path)
    try:
        raw = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"event payload {p}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"event payload {p}: not valid JSON (not UTF-8 text)") from None
    try:
        ev = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise UsageError(f"event payload {p}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(ev, dict):
        raise UsageError(f"event payload {p}: expected a JSON object")
    pr = ev.get("pull_request")
    if isinstance(pr, dict):
        try:
            base, head = str(pr["base"]["sha"]), str(pr["head"]["sha"])
        except (KeyError, TypeError):
            raise UsageError(f"event payload {p}: pull_request without base.sha / head.sha") from None
        if not (_SHA_RE.match(base) and _SHA_RE.match(head)):
            raise UsageError(f"event payload {p}: base/head are not commit SHAs")
        number = pr.get("number", ev.get("number"))
        head_repo = ((pr.get("head") or {}).get("repo") or {}).get("full_name")
        base_repo = ((pr.get("base") or {}).get("repo") or {}).get("full_name")
        fork = bool((pr.get("head") or {}).get("repo") is None or (head_repo and base_repo and head_repo != base_repo))
        return Event(
            "pull_request",
            base,
            head,
            int(number) if isinstance(number, int) else None,
            fork,
            base_repo if isinstance(base_repo, str) else None,
        )
    before, after = ev.get("before"), ev.get("after")
    if isinstance(before, str) and isinstance(after, str) and _SHA_RE.match(after):
        zero = not before.strip("0")
        return Event("push", None if zero or not _SHA_RE.match(before) else before, after)
    return Event("full")


@dataclass
class Change:
    status: str  # A M D R C T …
    path: str  # at head (for D: the deleted path)
    old: str | None = None  # renames and copies: the base path


def changed_files(repo: Repo, base: str, head: str) -> list[Change]:
    """`git diff --name-status -z -M base...head` (two dots when there is no merge base in a shallow clone)."""
    args = ["--name-status", "-z", "-M", "--no-color", "--no-ext-diff"]
    try:
        out = repo.git.diff(*args, f"{base}...{head}", "--")
    except Exception:
        out = repo.git.diff(*args, base, head, "--")
    toks = out.split("\0")
    changes: list[Change] = []
    i = 0
    while i < len(toks):
        st = toks[i]
        if not st:
            i += 1
            continue
        code = st[0]
        if code in "RC" and i + 2 < len(toks):
            changes.append(Change(code, toks[i + 2], toks[i + 1]))
            i += 3
        else:
            changes.append(Change(code, toks[i + 1] if i + 1 < len(toks) else ""))
            i += 2
    return [c for c in changes if c.path]


def has_commit(repo: Repo, sha: str) -> bool:
    try:
        repo.git.cat_file("-e", f"{sha}^{{commit}}")
        return True
    except Exception:
        return False


def relevant(path: str) -> bool:
    """A card, config, tokenizer, weights, licence/notice or modeling code file."""
    from scanner.file_formats import is_weight_file
    from scanner.sources.interface import SMALL_JSON_FILES, is_text_file

    name = PurePosixPath(path).name.lower()
    return (
        is_text_file(name)
        or name in SMALL_JSON_FILES
        or name.startswith("tokenizer")
        or name in TOKENIZER_NAMES
        or is_weight_file(name)
        or (name.endswith(".py") and name.startswith(("modeling_", "configuration_", "tokenization_")))
    )


def _commit_tree(repo: Repo, sha: str) -> Tree:
    files: dict[str, list[str]] = {}
    dirs: set[str] = {""}
    out = repo.git.ls_tree("-r", "-z", "--name-only", sha)
    for path in out.split("\0"):
        if not path:
            continue
        parent, _, name = path.rpartition("/")
        files.setdefault(parent, []).append(name)
        parts = parent.split("/") if parent else []
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]))
    return Tree(lambda folder: files.get(folder, []) if folder in dirs else None)


@dataclass
class Plan:
    folders: dict[str, str | None] = field(default_factory=dict)  # head folder → base folder (None: new)
    deleted: list[str] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)  # head folder → base folder
    changed_files: int = 0


def plan_folders(changes: list[Change], head: Tree, base: Tree | None, scopes: list[str]) -> Plan:
    plan = Plan(changed_files=len(changes))
    head_folders: set[str] = set()
    base_touched: set[str] = set()
    votes: dict[str, dict[str, int]] = {}
    for c in changes:
        if c.status != "D" and relevant(c.path):
            hf = head.model_folder(c.path, scopes)
            if hf is not None:
                head_folders.add(hf)
        old = c.path if c.status == "D" else c.old
        if old and base is not None and relevant(old):
            bf = base.model_folder(old, scopes)
            if bf is not None:
                base_touched.add(bf)
                if c.status == "R":
                    hf = head.model_folder(c.path, scopes)
                    if hf is not None and hf != bf:
                        votes.setdefault(hf, {}).setdefault(bf, 0)
                        votes[hf][bf] += 1
    for bf in base_touched:
        if head.exists(bf) and head.model_folder(bf + "/x", [bf]) == bf:
            head_folders.add(bf)  # files deleted from a folder that is still a model
    used: set[str] = set()
    for hf in sorted(head_folders):
        if base is not None and base.exists(hf) and base.model_folder(hf + "/x", [hf]) == hf:
            plan.folders[hf] = hf
        elif hf in votes:
            bf = max(votes[hf].items(), key=lambda kv: kv[1])[0]
            plan.folders[hf] = bf
            plan.renamed[hf] = bf
            used.add(bf)
        else:
            plan.folders[hf] = None
    plan.deleted = sorted(
        bf
        for bf in base_touched
        if bf not in used
        and bf not in plan.folders
        and not (head.exists(bf) and head.model_folder(bf + "/x", [bf]) == bf)
    )
    return plan


def extract_base(repo: Repo, sha: str, folders: list[str], dest: Path) -> None:
    """`git archive SHA -- folders` unpacked under `dest` (the workspace is not touched)."""
    with tempfile.TemporaryFile() as fh:
        repo.git.execute(
            ["git", "archive", "--format=tar", sha, "--", *([f or "." for f in folders] or ["."])], output_stream=fh
        )
        fh.seek(0)
        with tarfile.open(fileobj=fh, mode="r:") as tar:
            tar.extractall(dest, filter="data")


# -- scanning ----------------------------------------------------------------------------------------------------
def _scan_folder(
    root: Path, folder: str, target: str, policy: Policy, index: Index | None, publisher: tuple[str, str] | None = None
) -> TargetReport:
    """`publisher`: (GitHub OWNER/NAME, where it was learned) of the repository the scanned content belongs to."""
    from scanner.pipeline import scan_snapshot
    from scanner.sources.local import LocalSource

    path = root / folder if folder else root
    try:
        snap = LocalSource(str(path), target=target).snapshot()
        if publisher is not None:  # a GitHub repository: its owner publishes; its name is no Hub id
            snap.meta["repo_id"], snap.meta["repo_id_from"] = publisher[0].split("/", 1)[0], publisher[1]
        report = scan_snapshot(snap, policy, index)
        report.revision = None
        return report
    except (UsageError, SourceError) as exc:
        msg = f"{target}: {str(exc).replace(str(root), '').lstrip('/')}"[:400]
        return TargetReport(target, [finding(getattr(exc, "rule", "source.unreadable"), msg)], error=msg)


def mark_status(head: TargetReport, base: TargetReport | None, aliases: Iterable[str]) -> None:
    """Set `status` on every head finding: "existing" when it is the same finding (Finding.key, then coarse_key)
    as one on the base, else "new"."""
    t = head.target
    aliases = list(aliases)
    if base is None:
        for f in head.findings:
            f.status = "new"
        return
    hit, _ = match_keys(
        [(f.key(t, aliases), f.coarse_key(t)) for f in head.findings],
        [(f.key(t, aliases), f.coarse_key(t)) for f in base.findings],
    )
    for f, h in zip(head.findings, hit, strict=False):
        f.status = "existing" if h else "new"


# -- annotations and step outputs ------------------------------------------------------------------------------
def write_outputs(
    output_path: str | None, counts: dict[str, int], report_paths: list[str], sarif_path: str | None = None
) -> None:
    """`findings-<severity>=N`, `findings-new=N`, `findings-new-<severity>=N`, `findings-total=N`, `sarif-path`
    and the multi-line `report-paths` for $GITHUB_OUTPUT."""
    if not output_path:
        return
    lines = [f"findings-{k}={v}" for k, v in counts.items()]
    if sarif_path and "\n" not in sarif_path:
        lines.append(f"sarif-path={sarif_path}")
    delim = f"ORIGINSCAN_{uuid.uuid4().hex}"
    lines.append(f"report-paths<<{delim}")
    lines += [p for p in report_paths if "\n" not in p and delim not in p]
    lines.append(delim)
    append(output_path, "\n".join(lines) + "\n")


def split_inputs(text: str | Iterable[str] | None) -> list[str]:
    """An action input holding a list: items separated by newlines, commas or spaces."""
    if text is None:
        return []
    if not isinstance(text, str):
        return [str(t) for t in text if str(t).strip()]
    return [t for t in re.split(r"[\s,]+", text) if t]


def truthy(text: str | bool | None, default: bool = True) -> bool:
    """An action input holding a boolean ("true"/"false", "yes"/"no", "1"/"0"; empty: the default)."""
    if isinstance(text, bool):
        return text
    if text is None or not str(text).strip():
        return default
    value = str(text).strip().lower()
    if value in ("true", "yes", "1", "on"):
        return True
    if value in ("false", "no", "0", "off"):
        return False
    raise UsageError(f"expected true or false, got {text!r}")


def _scopes(workspace: Path, paths: Iterable[str]) -> list[str]:
    out = []
    for p in paths or ["."]:
        p = str(p).strip()
        if not p:
            continue
        full = (workspace / p).resolve()
        try:
            rel = full.relative_to(workspace.resolve()).as_posix()
        except ValueError:
            raise UsageError(f"path {p!r} is outside the workspace") from None
        out.append("" if rel == "." else rel)
    return out or [""]


# -- the entry point ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PullRequestOptions:
    """What one pull-request run is asked to do: the `ci pull-request` options, which are the Action's inputs.
    Files and URLs left None come from the runner's environment (`with_runner_defaults`); the token never does."""

    workspace: Path  # the checkout (GITHUB_WORKSPACE)
    event_path: str | None = None  # GITHUB_EVENT_PATH; None: scan every model folder in scope
    policy: str | None = None  # policy file; None: .originscan.yml in the workspace
    fail_on: str | None = None  # lowest severity of a NEW finding that fails (parse_fail_on); None: the policy's
    formats: tuple[str, ...] = ("markdown", "json")  # report files to write
    comment: bool = True  # keep one PR comment up to date
    sarif_path: str | None = None  # also write SARIF here (for code scanning)
    paths: tuple[str, ...] = ()  # folders holding model folders; (): the whole checkout
    output_dir: Path | None = None  # report files; None: $RUNNER_TEMP/originscan-reports
    summary_path: str | None = None  # GITHUB_STEP_SUMMARY
    output_path: str | None = None  # GITHUB_OUTPUT
    api_url: str | None = None  # GITHUB_API_URL
    repo: str | None = None  # OWNER/NAME (GITHUB_REPOSITORY)
    token: str | None = field(default=None, repr=False)  # for the PR comment; never printed

    def with_runner_defaults(self) -> PullRequestOptions:
        env = os.environ
        return replace(
            self,
            summary_path=self.summary_path if self.summary_path is not None else env.get("GITHUB_STEP_SUMMARY"),
            output_path=self.output_path if self.output_path is not None else env.get("GITHUB_OUTPUT"),
            api_url=self.api_url or env.get("GITHUB_API_URL") or "https://api.github.com",
            repo=self.repo or env.get("GITHUB_REPOSITORY"),
        )


class CouldNotRun(Exception):
    """The job cannot run (bad input, no checkout, git failing): one ::error:: line and exit status 2."""


@dataclass
class _Job:
    """One run: its options, where its log lines go, and the notes its PR comment carries."""

    opts: PullRequestOptions
    log: Callable[[str], None]
    notes: list[str] = field(default_factory=list)

    def warn(self, note: str) -> None:
        self.notes.append(note)
        self.log(workflow_command("warning", f"originscan: {_safe(note)}"))


@dataclass(frozen=True)
class _Inputs:
    """The options checked and read: the event, the policy and its threshold, the scopes and the report formats."""

    event: Event
    policy: Policy
    threshold: Severity | None
    scopes: list[str]
    formats: list[str]


@dataclass(frozen=True)
class _Checkout:
    """The git side: the repository (None for a full scan), the base to compare with (None: every finding is
    new), and which model folders to scan."""

    repo: Repo | None
    base_sha: str | None
    plan: Plan


def run_pull_request(
    opts: PullRequestOptions, *, index: Index | None = None, log: Callable[[str], None] | None = None
) -> int:
    """Run originscan for one GitHub Actions job; returns the exit status (0 pass, 1 new findings at/above
    the threshold, 2 the job could not run)."""
    from scanner import __version__

    job = _Job(opts.with_runner_defaults(), log or (lambda line: print(line, flush=True)))
    try:
        inputs = read_inputs(job.opts)
        checkout = plan_checkout(job, inputs)
    except (UsageError, CouldNotRun) as exc:
        return could_not_run_outputs(job, str(exc))
    reports = scan_plan(job, inputs, checkout, index)
    written = write_reports(job, reports, inputs.formats)
    body = pr_comment(
        reports,
        inputs.threshold,
        version=__version__,
        base=checkout.base_sha,
        head=inputs.event.head,
        renamed=checkout.plan.renamed,
        deleted=checkout.plan.deleted,
        notes=job.notes,
        run_url=run_url(),
    )
    if inputs.event.kind == "pull_request" and job.opts.comment:
        post_comment(job, inputs.event, body)
    return finish(job, reports, inputs.threshold, body, written)


def could_not_run_outputs(job: _Job, message: str) -> int:
    """A job that could not run: one ::error:: line, the step summary says why, every output count is 0."""
    job.log(workflow_command("error", f"originscan: {_safe(message)}"))
    append(job.opts.summary_path, could_not_run(message))
    write_outputs(job.opts.output_path, {"total": 0, "new": 0, **{s.name: 0 for s in SEVERITIES}}, [])
    return 2


def read_inputs(opts: PullRequestOptions) -> _Inputs:
    """The event, the policy, the threshold, the scopes and the formats, each checked (UsageError: one line)."""
    from scanner.policy import load_policy, parse_fail_on

    ws = opts.workspace
    event = read_event(opts.event_path)
    policy = load_policy(opts.policy, search_dirs=[ws])
    threshold = parse_fail_on(opts.fail_on) if opts.fail_on is not None else policy.fail_on
    scopes = _scopes(ws, opts.paths)
    formats = [f.strip().lower() for f in opts.formats if f and f.strip()]
    bad = [f for f in formats if f not in BY_NAME]
    if bad:
        raise UsageError(f"--formats: unknown format {bad[0]!r} ({', '.join(BY_NAME)})")
    if not ws.is_dir():
        raise UsageError(f"workspace {ws}: not a directory")
    return _Inputs(event, policy, threshold, scopes, formats)


def plan_checkout(job: _Job, inputs: _Inputs) -> _Checkout:
    """The model folders to scan: those the pull request (or push) changed, each with its base folder when the
    base commit is in the checkout; every model folder in scope otherwise."""
    ws, event = job.opts.workspace, inputs.event
    if event.kind not in ("pull_request", "push"):
        return _Checkout(None, None, Plan(folders={f: None for f in all_model_folders(ws, inputs.scopes)}))
    import git

    try:
        repo = git.Repo(ws)
    except Exception:
        raise CouldNotRun(f"workspace {ws} is not a git checkout (use actions/checkout before originscan)") from None
    head_sha = event.head if event.head and has_commit(repo, event.head) else "HEAD"
    base_sha = event.base
    if base_sha and not has_commit(repo, base_sha):
        try:  # a shallow checkout: ask the remote for the base commit (best effort)
            repo.git.fetch("--no-tags", "--depth=1", "origin", base_sha)
        except Exception:
            pass
    if base_sha and has_commit(repo, base_sha):
        try:
            changes = changed_files(repo, base_sha, head_sha)
            plan = plan_folders(changes, worktree(ws), _commit_tree(repo, base_sha), inputs.scopes)
        except Exception as exc:
            first = str(exc).splitlines()[0][:200]
            raise CouldNotRun(f"git diff {base_sha[:12]}...{str(head_sha)[:12]} failed: {first}") from None
        return _Checkout(repo, base_sha, plan)
    if base_sha:
        job.warn(
            f"base commit {base_sha[:12]} is not in the checkout (use actions/checkout with "
            "fetch-depth: 0): every model folder in scope was scanned and every finding counts "
            "as new"
        )
    return _Checkout(repo, None, Plan(folders={f: None for f in all_model_folders(ws, inputs.scopes)}))


def scan_plan(job: _Job, inputs: _Inputs, checkout: _Checkout, index: Index | None) -> list[TargetReport]:
    """Each planned folder scanned at head (the checkout) and at base (`git archive` into a temporary folder),
    head findings marked new or existing."""
    ws, plan = job.opts.workspace, checkout.plan
    reports: list[TargetReport] = []
    tmp = Path(tempfile.mkdtemp(prefix="originscan-base-"))
    try:
        base_root = tmp / (ws.resolve().name or "repo")
        base_folders = sorted({b for b in plan.folders.values() if b is not None})
        if checkout.base_sha and base_folders and checkout.repo is not None:
            try:
                extract_base(checkout.repo, checkout.base_sha, base_folders, base_root)
            except Exception as exc:
                job.warn(f"the base commit could not be read ({type(exc).__name__}): findings count as new")
                plan.folders = {h: None for h in plan.folders}
        # who publishes what is scanned: the repository the pull request merges into, or the one the job runs in
        repo = job.opts.repo
        publisher = (
            (inputs.event.base_repo, "the pull request's base repository")
            if inputs.event.base_repo
            else ((repo, "GITHUB_REPOSITORY") if repo else None)
        )
        for hf, bf in plan.folders.items():
            target = hf or "."
            job.log(
                f"originscan: scanning {_safe(target)}" + (f" (base: {_safe(bf or '.')})" if bf is not None else "")
            )
            head_report = _scan_folder(ws, hf, target, inputs.policy, index, publisher)
            base_report = (
                _scan_folder(base_root, bf, target, inputs.policy, index, publisher) if bf is not None else None
            )
            if base_report is not None and base_report.error:
                base_report = None
            aliases = (
                {PurePosixPath(hf).name if hf else ws.resolve().name, PurePosixPath(bf).name if bf else base_root.name}
                if bf is not None
                else set()
            )
            mark_status(head_report, base_report, aliases)
            reports.append(head_report)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return reports


def write_reports(job: _Job, reports: list[TargetReport], formats: list[str]) -> list[str]:
    """The report files (and the SARIF file asked for), their paths; a file that cannot be written is a note."""
    from scanner import __version__
    from scanner.knowledge import catalogue
    from scanner.report.render import render, sarif_log

    ws, sarif_path = job.opts.workspace, job.opts.sarif_path
    out_dir = job.opts.output_dir or Path(os.environ.get("RUNNER_TEMP") or tempfile.gettempdir()) / "originscan-reports"
    written: list[str] = []
    try:
        for fmt in formats:
            p = out_dir / f"originscan.{BY_NAME[fmt].extension}"
            if fmt == "sarif":
                text = json.dumps(sarif_log(reports, catalogue(), version=__version__, base=ws), indent=2) + "\n"
            else:
                text = render(reports, fmt, catalogue(), version=__version__)
            write_text_atomic(p, text)
            written.append(str(p))
        if sarif_path:
            sp = Path(sarif_path)
            write_text_atomic(
                sp, json.dumps(sarif_log(reports, catalogue(), version=__version__, base=ws), indent=2) + "\n"
            )
            if str(sp) not in written:
                written.append(str(sp))
    except OSError as exc:
        job.warn(f"a report file could not be written: {exc.strerror or exc}")
    return written


def post_comment(job: _Job, event: Event, body: str) -> None:
    """Create or update the PR comment; a refusal (a fork's read-only token, no token, the API down) costs a
    warning, never the report or the verdict."""
    token, repo = job.opts.token, job.opts.repo
    if not token:
        job.log(
            workflow_command(
                "notice",
                "originscan: no token (a pull request from a fork?): the PR comment was "
                "skipped; the report is in the step summary",
            )
        )
        return
    if not (repo and REPO_RE.match(repo)) or event.number is None:
        job.log(workflow_command("warning", "originscan: no repository or PR number: the PR comment was skipped"))
        return
    try:
        api = GitHubAPI(token, job.opts.api_url or "https://api.github.com", retry=BEST_EFFORT_RETRY)
        action, cid = upsert_comment(api, repo, event.number, body)
        job.log(f"originscan: PR comment {action} ({cid})")
    except SourceError as exc:  # APIError (a refusal) or no answer at all
        status = getattr(exc, "status", None)
        hint = " (a pull request from a fork has a read-only token)" if status == 403 else ""
        job.log(
            workflow_command(
                "warning",
                f"originscan: could not post the PR comment: {_safe(exc)}{hint}; the report is in the step summary",
            )
        )
    except Exception as exc:  # never lose the report or change the verdict over a comment
        job.log(
            workflow_command(
                "warning",
                f"originscan: could not post the PR comment ({type(exc).__name__}); the report is in the step summary",
            )
        )


def finish(job: _Job, reports: list[TargetReport], threshold: Severity | None, body: str, written: list[str]) -> int:
    """The step summary, the annotations, $GITHUB_OUTPUT and the last log line; the exit status: 1 when a NEW
    finding is at or above the threshold, 2 when no folder could be scanned."""
    append(job.opts.summary_path, body)
    for line in annotation_commands(reports, threshold):
        job.log(line)
    active = [f for r in reports for f in r.active()]
    new = [f for f in active if f.status != "existing"]
    counts = {
        "total": len(active),
        "new": len(new),
        **{s.name: sum(1 for f in active if f.severity == s) for s in SEVERITIES},
    }
    counts.update({f"new-{s.name}": sum(1 for f in new if f.severity == s) for s in SEVERITIES})
    sarif_path = job.opts.sarif_path
    write_outputs(job.opts.output_path, counts, written, sarif_path if sarif_path and sarif_path in written else None)
    failing = [f for f in new if threshold is not None and f.severity >= threshold]
    job.log(
        f"originscan: {len(reports)} model folder(s), {len(new)} new and {len(active) - len(new)} existing "
        f"finding(s); {len(failing)} new at {threshold.name if threshold is not None else 'never'} or above"
    )
    if reports and all(r.error for r in reports):
        return 2
    return 1 if failing else 0
