"""The hostile corpus (tests/hostile/corpus.py) through every command and every report format.

Every case runs in its own child process (forked by one of two tests/hostile/runner.py servers that imported the
scanner once) under a 1 GiB address-space cap, with fake HF_TOKEN / GITHUB_TOKEN in its environment: `scan` in
text, json, markdown, sarif and html, `attribution`, `compare` (text and json) against a clean reference, and
`index add` into a fresh index. The scans see an index holding the reference, so weights are compared too. The
cases run two at a time, once per session; each test then asserts on one case's saved outputs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import jsonschema
import pytest
from corpus import CASES, GITHUB_TOKEN, HF_TOKEN, Case, build_case, build_reference
from helpers import register

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
RUNNER = HERE / "runner.py"
SARIF_SCHEMA = REPO_ROOT / "tests" / "data" / "sarif-schema-2.1.0.json"

AS_LIMIT = 1 << 30  # address space of each child: 1 GiB
MEMORY_LIMIT_KB = 1 << 20  # peak resident memory asserted: under 1 GiB
CASE_TIMEOUT = 60  # the child is killed after this (a hang)
CASE_BUDGET = 30  # and every case must finish well under it
# The 100 000-file case lists its tree once per command (ten times): ~15 s on an idle 2-core box, up to ~55 s when
# the box runs other suites at a load of 13.
HEAVY_CASE_BUDGET = 55
COMMAND_TIMEOUT = 25
WORKERS = 2

SCAN_FORMATS = ("text", "json", "markdown", "sarif", "html")

# The session fixture runs every case (minutes on a loaded 2-core box) inside the first test's timeout.
pytestmark = pytest.mark.timeout(900)


@dataclass
class Ran:
    case: Case
    repo: Path
    marker: Path
    commands: list[dict] = field(default_factory=list)  # argv, status, rc, seconds, out, err (bytes)
    child_rc: int | None = None
    child_out: bytes = b""
    child_err: bytes = b""
    seconds: float = 0.0
    maxrss_kb: int = 0
    killed: bool = False

    def command(self, *prefix: str) -> dict:
        return next(c for c in self.commands if c["argv"][: len(prefix)] == list(prefix))

    def scan(self, fmt: str) -> dict:
        return next(
            c for c in self.commands if c["argv"][0] == "scan" and c["argv"][c["argv"].index("--format") + 1] == fmt
        )


def commands_for(repo: Path, reference: Path, work: Path) -> list[list[str]]:
    r = str(repo)
    return [["scan", r, "--format", fmt] for fmt in SCAN_FORMATS] + [
        ["attribution", r],
        ["compare", r, str(reference)],
        ["compare", r, str(reference), "--format", "json"],
        ["index", "add", r, "--index", str(work / "index-add.sqlite")],
    ]


def child_env(work: Path, index: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORIGINSCAN_", "HF_", "GITHUB_"))}
    env.update(
        HF_TOKEN=HF_TOKEN,
        GITHUB_TOKEN=GITHUB_TOKEN,
        HUGGING_FACE_HUB_TOKEN=HF_TOKEN,
        ORIGINSCAN_INDEX=str(index),
        ORIGINSCAN_CACHE=str(work / "cache"),
        HF_HUB_OFFLINE="1",
        HF_HOME=str(work / "hf-home"),
        MALLOC_ARENA_MAX="2",
        OPENBLAS_NUM_THREADS="1",
        PYTHONPATH=str(REPO_ROOT),
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def run_child(spec: dict, work: Path, env: dict[str, str]) -> tuple[int | None, bytes, bytes, float, int, bool]:
    """Run the runner on `spec`; (exit status, stdout, stderr, seconds, peak RSS in KiB, killed for a hang)."""
    spec_path = work / "spec.json"
    spec_path.write_text(json.dumps(spec))
    out_path, err_path = work / "child.out", work / "child.err"
    started = time.monotonic()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, str(RUNNER), str(spec_path)],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            cwd=work,
            env=env,
        )
        killed = False
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - started > CASE_TIMEOUT:
                proc.kill()
                killed = True
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
        proc.returncode = os.waitstatus_to_exitcode(status)  # keep Popen from waiting on a reaped child
    return (
        proc.returncode,
        out_path.read_bytes(),
        err_path.read_bytes(),
        time.monotonic() - started,
        usage.ru_maxrss,
        killed,
    )


def load_commands(work: Path) -> list[dict]:
    path = work / "out" / "result.json"
    commands = json.loads(path.read_text()) if path.exists() else []
    for i, c in enumerate(commands):
        c["out"] = (work / "out" / f"{i}.out").read_bytes()
        c["err"] = (work / "out" / f"{i}.err").read_bytes()
    return commands


def run_cases(cases: list[Case], root: Path, reference: Path, index: Path) -> list[Ran]:
    """Build every case, then run them in WORKERS fork servers (tests/hostile/runner.py --serve): the scanner is
    imported once per server and each case runs in its own forked, capped child."""
    built = []
    for c in cases:
        repo, marker = build_case(c, root)
        work = root / c.name / "work"
        (work / "out").mkdir(parents=True)
        built.append((c, repo, marker, work))
    specs = [
        {
            "as_limit": AS_LIMIT,
            "timeout": COMMAND_TIMEOUT,
            "case_timeout": CASE_TIMEOUT,
            "out": str(work / "out"),
            "cwd": str(work),
            "env": {"ORIGINSCAN_CACHE": str(work / "cache")},
            "commands": commands_for(repo, reference, work),
        }
        for c, repo, marker, work in built
    ]
    light = [spec for spec, (c, *_) in zip(specs, built) if not c.heavy]
    heavy = [spec for spec, (c, *_) in zip(specs, built) if c.heavy]
    # Heavy cases run alone afterwards: their budget is measured without this suite competing for the 2 cores.
    for phase, groups in (("light", [light[k::WORKERS] for k in range(WORKERS)]), ("heavy", [heavy])):
        servers = []
        for k, group in enumerate(g for g in groups if g):
            spec_file = root / f"server-{phase}-{k}.json"
            spec_file.write_text(json.dumps(group))
            servers.append(
                subprocess.Popen(
                    [sys.executable, str(RUNNER), "--serve", str(spec_file)],
                    stdin=subprocess.DEVNULL,
                    cwd=root,
                    env=child_env(root, index),
                )
            )
        for proc in servers:
            proc.wait(timeout=CASE_TIMEOUT * (len(specs) + 2))
    ran = []
    for c, repo, marker, work in built:
        try:
            child = json.loads((work / "child.json").read_text())
        except OSError:  # the server never reached this case
            child = {"exit": None, "seconds": 0.0, "peak_rss_kb": 0, "killed": True}
        read = lambda name, work=work: (work / name).read_bytes() if (work / name).exists() else b""  # noqa: E731
        ran.append(
            Ran(
                c,
                repo,
                marker,
                load_commands(work),
                child["exit"],
                read("child.out"),
                read("child.err"),
                child["seconds"],
                child["peak_rss_kb"],
                child["killed"],
            )
        )
    return ran


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> dict[str, Ran]:
    root = tmp_path_factory.mktemp("hostile")
    reference = build_reference(root)
    index = root / "index.sqlite"
    register(index, reference, "reference/tiny", "mit")
    started = time.monotonic()
    ran = run_cases(CASES, root, reference, index)
    corpus_seconds = time.monotonic() - started
    times = sorted(r.seconds for r in ran)
    # The figures the issue asks for, printed with -s (and kept in the pytest log otherwise).
    print(
        f"\nhostile corpus: {len(ran)} cases built and run in {corpus_seconds:.1f} s ({WORKERS} at a time); per case "
        f"{times[0]:.2f}-{times[-1]:.2f} s; peak RSS {max(r.maxrss_kb for r in ran) / 1024:.0f} MiB; slowest "
        + ", ".join(f"{r.case.name} {r.seconds:.1f} s" for r in sorted(ran, key=lambda r: -r.seconds)[:4])
    )
    print(
        "local hostile corpus: "
        + summary_line(
            runs=sum(len(r.commands) for r in ran),
            problems={r.case.name: classify(robustness_problems(r)) for r in ran},
            peak_kb=max(r.maxrss_kb for r in ran),
        )
    )
    yield {r.case.name: r for r in ran}
    shutil.rmtree(root, ignore_errors=True)


# -- what every output must (not) contain ------------------------------------------------------------------------
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_WORKFLOW = re.compile(r"^\s*(::|##\[)", re.M)


def terminal_problems(text: str) -> list[str]:
    """A terminal or a CI log would act on these: control characters, escape sequences, workflow commands."""
    problems = []
    if m := _CONTROL.search(text):
        problems.append(f"control character {m.group()!r} in {text[max(0, m.start() - 40) : m.end() + 40]!r}")
    if m := _WORKFLOW.search(text):
        problems.append(f"workflow command at a line start: {text[m.start() : m.start() + 60]!r}")
    return problems


def strict_json(text: str):
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    value = json.loads(text, parse_constant=refuse)

    def walk(v):
        if isinstance(v, str):
            v.encode("utf-8")  # a lone surrogate (from a \udXXX escape) raises here, as strict parsers do
        elif isinstance(v, dict):
            for k, x in v.items():
                walk(k)
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(value)
    return value


# The tags the HTML template itself writes; a tag from anywhere else was injected.
HTML_TAGS = set(re.findall(r"<([a-zA-Z][a-zA-Z0-9]*)", (REPO_ROOT / "templates" / "html.j2").read_text()))


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in HTML_TAGS or tag in ("script", "iframe", "img", "object", "embed"):
            self.problems.append(f"unexpected tag <{tag}>")
        for name, value in attrs:
            if name.startswith("on") or (value or "").strip().lower().startswith(("javascript:", "data:")):
                self.problems.append(f"hostile attribute {name}={value!r} on <{tag}>")


def html_problems(text: str) -> list[str]:
    p = _Tags()
    p.feed(text)
    p.close()
    return p.problems + [x for x in terminal_problems(text) if "control" in x]


_MD_TAG = re.compile(r"<(?!/?(details|summary)>)[A-Za-z/!?]")
_MD_LINK = re.compile(r"(?<!\\)\]\(|(?<!\\)!\[|(?<!\\)\[[^\]]*(?<!\\)\]\[")
_MD_MENTION = re.compile(r"(?<![\w`])@[A-Za-z0-9]")
_MD_URL = re.compile(r"(?i)\b(https?|ftp)://|\bwww\.")


def markdown_problems(text: str) -> list[str]:
    problems = [x for x in terminal_problems(text) if "control" in x]
    for label, rx in (
        ("raw HTML", _MD_TAG),
        ("link or image", _MD_LINK),
        ("@-mention", _MD_MENTION),
        ("autolinked URL", _MD_URL),
    ):
        if m := rx.search(text):
            problems.append(f"{label}: {text[max(0, m.start() - 40) : m.end() + 40]!r}")
    return problems


def one_error_line(c: dict) -> bool:
    lines = [ln for ln in c["err"].decode("utf-8", "replace").splitlines() if ln.strip()]
    return c["rc"] == 2 and len(lines) == 1 and lines[0].startswith("originscan: ")


def robustness_problems(r: Ran) -> list[str]:
    problems = []
    if r.killed:
        problems.append(f"hang: killed after {CASE_TIMEOUT} s")
    elif r.seconds > (budget := HEAVY_CASE_BUDGET if r.case.heavy else CASE_BUDGET):
        problems.append(f"took {r.seconds:.1f} s (budget {budget} s)")
    if r.maxrss_kb >= MEMORY_LIMIT_KB:
        problems.append(f"peak memory {r.maxrss_kb / 1024:.0f} MiB")
    if r.child_rc != 0 and not r.killed:
        problems.append(f"child exited {r.child_rc}: {r.child_err[-2000:]!r}")
    if len(r.commands) != len(commands_for(r.repo, r.repo, r.repo)):
        problems.append(f"only {len(r.commands)} commands ran")
    if r.marker.exists():
        problems.append("the planted marker file was created: something was executed")
    for label, blob in (("child stdout", r.child_out), ("child stderr", r.child_err)):
        text = blob.decode("utf-8", "replace")
        if "Traceback" in text or HF_TOKEN in text or GITHUB_TOKEN in text:
            problems.append(f"{label}: {text[-1500:]!r}")
    for c in r.commands:
        name = " ".join(c["argv"][:1] + [a for a in c["argv"] if a in SCAN_FORMATS or a == "json"])
        if c["status"] != "exit":
            problems.append(f"{name}: {c['status']}: {c['err'][-1500:]!r}")
            continue
        try:
            out, err = c["out"].decode("utf-8"), c["err"].decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(f"{name}: output is not valid UTF-8 ({exc})")
            continue
        for text in (out, err):
            if "Traceback" in text or "internal error" in text:
                problems.append(f"{name}: {text[-600:]!r}")
            if HF_TOKEN in text or GITHUB_TOKEN in text:
                problems.append(f"{name}: a token was printed")
        if c["rc"] not in ((0, 1, 2, 3) if c["argv"][0] == "compare" else (0, 1, 2)):  # compare: 3 is inconclusive
            problems.append(f"{name}: exit status {c['rc']}")
        if c["rc"] == 2 and not one_error_line(c):
            problems.append(f"{name}: exit 2 without one clear error line: {err[-600:]!r}")
        problems += [f"{name} stderr: {p}" for p in terminal_problems(err)]
        fmt = c["argv"][c["argv"].index("--format") + 1] if "--format" in c["argv"] else "text"
        if c["rc"] == 2 or not out:
            continue
        if fmt == "text":
            problems += [f"{name} stdout: {p}" for p in terminal_problems(out)]
        elif fmt == "markdown":
            problems += [f"{name}: {p}" for p in markdown_problems(out)]
        elif fmt == "html":
            problems += [f"{name}: {p}" for p in html_problems(out)]
        else:
            try:
                doc = strict_json(out)
            except (ValueError, UnicodeEncodeError) as exc:
                problems.append(f"{name}: not strict JSON: {exc}")
                continue
            if fmt == "sarif":
                problems += [f"sarif: {e.message[:200]}" for e in sarif_validator().iter_errors(doc)]
    return problems


# What robustness_problems says, sorted into the summary line's columns by its wording.
_KINDS = (
    ("hang", ("hang",)),
    ("exec", ("marker",)),
    ("leak", ("token",)),
    ("memory", ("peak memory",)),
    ("budget", ("(budget",)),
    (
        "injection",
        (
            "control character",
            "workflow command",
            "raw HTML",
            "link or image",
            "@-mention",
            "autolinked URL",
            "unexpected tag",
            "hostile attribute",
            "not strict JSON",
            "not valid UTF-8",
        ),
    ),
)


def classify(problems: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {k: [] for k in ("crash", "hang", "exec", "leak", "injection", "memory", "budget")}
    for p in problems:
        kind = next((k for k, words in _KINDS if any(w in p for w in words)), "crash")
        out[kind].append(p)
    return out


def summary_line(runs: int, problems: dict[str, dict[str, list[str]]], peak_kb: int) -> str:
    """runs, crashes, hangs, code execution, token leaks, injections, memory: cases with each kind of problem."""
    count = {k: sum(bool(p[k]) for p in problems.values()) for k in ("crash", "hang", "exec", "leak", "injection")}
    over = sum(bool(p["memory"]) for p in problems.values())
    slow = sum(bool(p["budget"]) for p in problems.values())
    return (
        f"{len(problems)} cases, {runs} command runs: {count['crash']} crashes, {count['hang']} hangs, "
        f"{count['exec']} code execution, {count['leak']} token leaks, {count['injection']} injections, "
        f"{over} over 1 GiB (peak {peak_kb / 1024:.0f} MiB), {slow} over the time budget"
    )


_VALIDATOR = None


def sarif_validator():
    global _VALIDATOR
    if _VALIDATOR is None:
        schema = json.loads(SARIF_SCHEMA.read_text(encoding="utf-8"))
        _VALIDATOR = jsonschema.Draft7Validator(schema)
    return _VALIDATOR


def scan_rules(r: Ran) -> set[str] | None:
    c = r.scan("json")
    if c["status"] != "exit" or c["rc"] == 2:
        return None
    doc = json.loads(c["out"])
    return {f["rule"] for t in doc["targets"] for f in t["findings"]}


# -- the tests ---------------------------------------------------------------------------------------------------
def test_corpus_covers_the_issue():
    assert len(CASES) >= 60
    names = {c.name for c in CASES}
    for prefix in ("st_", "shard_", "pkl_", "card_", "json_", "fs_"):
        assert sum(n.startswith(prefix) for n in names) >= 1, prefix


@pytest.mark.parametrize("name", [c.name for c in CASES])
def test_case_is_survived(corpus, name):
    """No traceback, no internal error, no hang, under 1 GiB, nothing executed, no token, nothing unescaped."""
    problems = robustness_problems(corpus[name])
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", [c.name for c in CASES])
def test_case_gets_its_finding(corpus, name):
    """The expected finding (all of `expect`, one of `expect_any`, none of `absent`), or one clear error line with
    exit 2 where allowed."""
    r = corpus[name]
    c = r.scan("json")
    assert c["status"] == "exit", c["status"]
    if c["rc"] == 2:
        assert r.case.error_ok and one_error_line(c), c["err"][-600:]
        return
    rules = scan_rules(r)
    assert rules is not None
    assert r.case.expect <= rules, f"missing {sorted(r.case.expect - rules)}; got {sorted(rules)}"
    if r.case.expect_any:
        assert r.case.expect_any & rules, f"none of {sorted(r.case.expect_any)}; got {sorted(rules)}"
    assert not (r.case.absent & rules), f"must stay quiet: {sorted(r.case.absent & rules)}"


# One hostile repo of each family, swept as an organisation next to a clean one: a bad repo costs its own findings,
# never the sweep. The shard report is then merged (`sweep --merge`) in every format.
SWEEP_CASES = (
    "st_dtype_is_a_list",
    "st_64gb_claimed_sparse",
    "pkl_zip_traversal_names",
    "card_yaml_alias_bomb",
    "card_lone_surrogates",
    "card_workflow_commands",
    "json_nan_literals",
    "json_lone_surrogates",
    "fs_non_utf8_names",
    "fs_names_with_newlines_and_escapes",
    "fs_links_to_devices",
    "fs_path_longer_than_path_max",
)


def test_sweep_and_merge_survive_a_hostile_organisation(corpus, tmp_path):
    targets = [str(corpus[n].repo) for n in SWEEP_CASES] + [
        str(corpus[SWEEP_CASES[0]].repo.parent.parent / "reference")
    ]
    # reports show each folder relative to the scan root (the corpus folder), never its absolute path: every repo
    # keeps its own report although all of them are called `repo`
    shown = [f"{n}/repo" for n in SWEEP_CASES] + ["reference"]
    shard = tmp_path / "shard.json"
    commands = [
        ["sweep", "hf:hostile", "--no-history", "--quiet", "--workers", "2", "--format", "json", "-o", str(shard)]
    ]
    commands += [["sweep", str(shard), "--merge", "--no-history", "--format", fmt] for fmt in SCAN_FORMATS]
    (tmp_path / "out").mkdir()
    spec = {
        "as_limit": AS_LIMIT,
        "timeout": COMMAND_TIMEOUT,
        "out": str(tmp_path / "out"),
        "commands": commands,
        "sweep_targets": targets,
    }
    index = tmp_path / "empty-index.sqlite"
    rc, out, err, seconds, rss, killed = run_child(spec, tmp_path, child_env(tmp_path, index))
    assert not killed and rc == 0, err[-2000:]
    ran = load_commands(tmp_path)
    assert len(ran) == len(commands)
    for c in ran:
        text = c["out"].decode("utf-8") + c["err"].decode("utf-8")
        assert c["status"] == "exit" and c["rc"] in (0, 1), (c["argv"], c["rc"], text[-1500:])
        assert "internal error" not in text and "Traceback" not in text and HF_TOKEN not in text
    doc = strict_json(shard.read_text(encoding="utf-8"))
    assert sorted(t["target"] for t in doc["targets"]) == sorted(shown)  # every repo has its report
    (mine,) = [t for t in doc["targets"] if t["target"] == "st_dtype_is_a_list/repo"]
    assert "source.malformed" in {f["rule"] for f in mine["findings"]}
    merged = {c["argv"][c["argv"].index("--format") + 1]: c["out"].decode("utf-8") for c in ran[1:]}
    assert not terminal_problems(merged["text"]) and not markdown_problems(merged["markdown"])
    assert not html_problems(merged["html"])
    assert not list(sarif_validator().iter_errors(strict_json(merged["sarif"])))
    assert sorted(t["target"] for t in strict_json(merged["json"])["targets"]) == sorted(shown)
    assert not any(t in text for t in targets for text in merged.values())  # no absolute path in any format
