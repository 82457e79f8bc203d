"""`originscan watch --probe`: the behaviour test for what the weight screen found, and the owner's canaries for
what it did not (the optional extra originscan[probe]; the tests themselves are scanner/provenance/probe.py's).

After the weight screen (scanner/watch.py) two kinds of repo are run against a watched model:

* every suspect, for a behaviour verdict beside its weight verdict: the owner's canaries (when registered with
  `index add … --canaries`), and with independent models given (`--probe-null`, at least two) the calibrated
  behaviour tests too (idiosyncratic agreement, hidden-state CKA), with the watched model as the reference;
* every repo judged in this run that the weight screen cleared (another width, weights that did not match), when
  the watched model has canaries: a student distilled on its outputs has none of its weights but may repeat its
  canaries, right and wrong answers alike.

A repo is downloaded into a temporary folder before it is run: config.json, the tokenizer files and the top-level
safetensors, never any other file it ships (no code, no pickle), and only when its safetensors are within the size
limit (the file sizes come from the Hub's file list first). transformers loads it with trust_remote_code=False.
A repo without safetensors but with GGUF models (a quantised release) has one GGUF file downloaded: the first of
its models in the weight screen's order (scanner/provenance/gguf.gguf_groups: no projector or imatrix file, a
clear quantisation type first, then the fewest bytes) that is one file within the size limit. Its header is read
with originscan's bounded parser before a GGUF runtime opens it (probe.check_model), and it runs through the GGUF
runtime probe uses (llama.cpp when installed, else transformers' GGUF loader).
A repo that cannot be probed (no safetensors or GGUF file, an architecture or quantisation type the runtime does
not run, a split GGUF model, too large, gated) gets the reason instead of a verdict; one broken repo never stops
the others.
"""

from __future__ import annotations

import importlib.util
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scanner.errors import UsageError
from scanner.watch_report import WEIGHTS_DERIVED, WEIGHTS_NO_MATCH, Probed, Watched, WatchReport

if TYPE_CHECKING:
    from scanner.provenance.behaviour import BehaviourTest
    from scanner.provenance.canaries import Canary
    from scanner.provenance.probe import Behaviour
    from scanner.watch import Outcome

INSTALL_HINT = "watch --probe needs torch and transformers: install originscan[probe]"
CONFIG_FILES = ("config.json", "generation_config.json", "model.safetensors.index.json")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",  # sentencepiece: a protobuf, not a pickle
)
JUDGED_STAGES = ("config", "header", "rows")  # outcomes of repos whose weights the screen looked at or ruled out


@dataclass(frozen=True)
class ProbeOptions:
    max_bytes: int = 2 * 1024**3  # a repo's safetensors downloaded at most
    max_repos: int = 100  # repos the weight screen cleared that are run against canaries, per run
    nulls: tuple[str, ...] = ()  # independent models (local folders or hf:OWNER/NAME[@REV])
    token: str | None = None
    endpoint: str | None = None


@dataclass(frozen=True)
class Candidate:
    repo: str
    revision: str | None
    watched: str
    weights: str  # WEIGHTS_DERIVED | WEIGHTS_NO_MATCH
    declared: bool | None  # None: read from its card when it is probed


class Skip(Exception):
    """Why a repo is not probed (its message goes into the report)."""


def require_extra() -> None:
    """One clear error before anything is listed when the extra is not installed."""
    if any(importlib.util.find_spec(m) is None for m in ("torch", "transformers")):
        raise UsageError(INSTALL_HINT)


def candidates(
    report: WatchReport, judged: Iterable[Outcome], with_canaries: set[str], max_repos: int
) -> tuple[list[Candidate], list[Probed]]:
    """(what to probe, what is over the limit): every suspect; every cleared repo once per watched model that has
    canaries, the first `max_repos` of them (the rest are reported as not probed)."""
    out = [Candidate(s.repo, s.revision, s.watched, WEIGHTS_DERIVED, s.declared) for s in report.suspects]
    suspected = {s.repo for s in report.suspects}
    over: list[Probed] = []
    cleared = 0
    for o in judged:
        if o.stage not in JUDGED_STAGES or o.suspects or o.repo in suspected:
            continue
        for name in sorted(with_canaries):
            if cleared < max_repos:
                out.append(Candidate(o.repo, o.sha, name, WEIGHTS_NO_MATCH, None))
            else:
                over.append(
                    Probed(o.repo, o.sha, name, WEIGHTS_NO_MATCH, False, None, f"over --probe-max-repos {max_repos}")
                )
        cleared += 1 if with_canaries else 0
    return out, over


def _api(options: ProbeOptions) -> Any:
    from scanner.sources.hf import hub_api

    return hub_api(options.endpoint, options.token)


@dataclass
class Fetched:
    folder: Path
    card: dict[str, Any] | None
    tags: list[str] = field(default_factory=list)
    weight_bytes: int = 0
    gguf_file: str | None = None  # the GGUF file downloaded (its path in the repo), when the repo has no safetensors

    @property
    def target(self) -> str:
        """What probe.measure runs: the folder, or the GGUF file in it."""
        return str(self.folder / self.gguf_file) if self.gguf_file else str(self.folder)


def choose_gguf(files: dict[str, int], max_bytes: int) -> str:
    """The GGUF file to probe among a repo's files (path -> size): the first model in the weight screen's order
    that is one file within `max_bytes`; Skip saying why when there is none."""
    from scanner.provenance.gguf import gguf_groups

    groups = gguf_groups(files)
    if not groups:
        raise Skip("no safetensors or GGUF model file (probe never unpickles .bin/.pt files)")
    single = [g for g in groups if len(g.files) == 1]
    fits = [g for g in single if g.size <= max_bytes]
    if fits:
        return fits[0].files[0]
    if single:
        g = min(single, key=lambda g: g.size)
        raise Skip(f"GGUF file {g.name} of {g.size:,} bytes (its smallest), over the limit of {max_bytes:,}")
    g = groups[0]
    raise Skip(f"its GGUF model {g.name} is split into {len(g.files)} files; probe runs one unsplit GGUF file")


def fetch(repo: str, revision: str | None, into: Path, options: ProbeOptions) -> Fetched:
    """Download what transformers needs to run `repo` (and nothing else) into `into`; Skip when it cannot be."""
    from scanner.sources.hf import hub_call

    api = _api(options)
    try:
        info = hub_call(f"hf:{repo}", api.model_info, repo, revision=revision, files_metadata=True)
    except Exception as exc:  # gated, private, gone, the Hub failing after retries
        raise Skip(f"could not read the repo ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})") from None
    every = {s.rfilename: int(s.size or 0) for s in info.siblings or []}
    sizes = {f: n for f, n in every.items() if "/" not in f}
    weights = sorted(f for f in sizes if f.endswith(".safetensors"))
    card = info.card_data.to_dict() if getattr(info, "card_data", None) is not None else None
    if not weights:
        gguf_file = choose_gguf(every, options.max_bytes)
        _download(api, repo, info.sha or revision, [gguf_file], into)
        return Fetched(into, card, list(info.tags or []), every[gguf_file], gguf_file)
    if "config.json" not in sizes:
        raise Skip("no config.json")
    if not any(f in sizes for f in TOKENIZER_FILES):
        raise Skip("no tokenizer files")
    total = sum(sizes[f] for f in weights)
    if total > options.max_bytes:
        raise Skip(f"safetensors weights of {total:,} bytes, over the limit of {options.max_bytes:,}")
    wanted = weights + [f for f in (*CONFIG_FILES, *TOKENIZER_FILES) if f in sizes]
    _download(api, repo, info.sha or revision, wanted, into)
    return Fetched(into, card, list(info.tags or []), total)


def _download(api: Any, repo: str, revision: str | None, files: list[str], into: Path) -> None:
    """Exactly these files of the repo into `into` (allow_patterns are globs: a name with [ or * is escaped)."""
    from glob import escape

    try:
        api.snapshot_download(repo, revision=revision, allow_patterns=[escape(f) for f in files], local_dir=into)
    except Exception as exc:
        raise Skip(f"could not download it ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})") from None
    missing = [f for f in files if not (into / f).is_file()]
    if missing:
        raise Skip(f"could not download {missing[0]}")


@dataclass
class _Watched:
    """What one watched model is probed with: its canaries, and (with independent models) its own behaviour."""

    watched: Watched
    canaries: list[Canary]
    reference: Behaviour | None = None
    nulls: list[Behaviour] = field(default_factory=list)
    problem: str | None = None  # why the behaviour tests cannot run (the canaries still do)


class _Prober:
    def __init__(self, report: WatchReport, canaries: dict[str, list[Canary]], options: ProbeOptions, tmp: Path):
        from scanner.provenance.probe import ProbeSettings, probe_texts

        self.options = options
        self.tmp = tmp
        self.full = ProbeSettings()
        # Canaries alone need no probe texts: a token of three short texts keeps measure()'s one forward pass cheap.
        self.canaries_only = ProbeSettings(sequences=3, tokens=4, chars=40)
        self.texts = probe_texts(self.full) if options.nulls else probe_texts(self.canaries_only)
        self.settings = self.full if options.nulls else self.canaries_only
        self.by_name = {w.name: _Watched(w, canaries.get(w.name, [])) for w in report.watched}
        self.measured: set[str] = set()

    def _local(self, target: str, label: str) -> str:
        """A folder for `target`: a local folder as it is, an `hf:` model downloaded like a suspect."""
        if not target.startswith("hf:"):
            return target
        repo, _, rev = target[3:].partition("@")
        return fetch(repo, rev or None, self.tmp / label, self.options).target

    def prepare(self, name: str, progress: Callable[[str], None]) -> _Watched:
        """Measure the watched model and the independent models once, the first time `name` is probed."""
        from scanner.provenance.probe import measure

        w = self.by_name[name]
        if name in self.measured or not self.options.nulls:
            return w
        self.measured.add(name)
        try:
            progress(f"probing the watched model {name}")
            ref = self._local(w.watched.target, f"reference-{len(self.measured)}")
            w.reference = measure(ref, self.texts, w.canaries, self.settings)
            for i, null in enumerate(self.options.nulls):
                progress(f"probing the independent model {null}")
                folder = self._local(null, f"null-{len(self.measured)}-{i}")
                w.nulls.append(measure(folder, self.texts, w.canaries, self.settings))
        except (UsageError, Skip) as exc:  # only the canaries, against coin flips, are left to test
            w.reference, w.nulls = None, []
            w.problem = f"the behaviour tests of {name} cannot run: {exc}"[:300]
            progress(w.problem)
        return w

    def tests(self, suspect: Behaviour, w: _Watched) -> list[BehaviourTest]:
        from scanner.provenance import behaviour as B
        from scanner.provenance.probe import likelihood_tests, tests_of

        if w.reference is not None:
            return tests_of(suspect, w.reference, w.nulls, w.canaries)
        if not w.canaries:
            return []
        answers = [c.answer for c in w.canaries]
        return [
            B.canary_test(
                [B.canary_hit(a, s) for a, s in zip(answers, suspect.canary_answers)],
                [[B.canary_hit(a, s) for a, s in zip(answers, n.canary_answers)] for n in w.nulls],
                [c.correct for c in w.canaries],
            ),
            *likelihood_tests(suspect, w.nulls, w.canaries),
        ]

    def probe(self, group: Sequence[Candidate], progress: Callable[[str], None]) -> list[Probed]:
        """One repo against each watched model it is a candidate for (downloaded once)."""
        from scanner.provenance import behaviour as B
        from scanner.provenance.probe import measure
        from scanner.watch import declared_bases, declares

        first = group[0]
        where = f"hf:{first.repo}" + (f"@{first.revision}" if first.revision else "")
        out: list[Probed] = []
        with tempfile.TemporaryDirectory(dir=self.tmp, prefix="suspect-") as folder:
            try:
                progress(f"probing {where}")
                fetched = fetch(first.repo, first.revision, Path(folder), self.options)
            except Skip as exc:
                return [
                    Probed(c.repo, c.revision, c.watched, c.weights, bool(c.declared), None, str(exc)) for c in group
                ]
            bases = declared_bases(fetched.card, fetched.tags, {})
            for c in group:
                w = self.prepare(c.watched, progress)
                declared = c.declared if c.declared is not None else bool(declares(bases, w.watched, set()))
                started = time.perf_counter()
                try:
                    behaviour = measure(fetched.target, self.texts, w.canaries, self.settings)
                except UsageError as exc:  # the repo's own file names in the reason, not the temporary folder's
                    why = str(exc).replace(f"{folder}/", "").replace(folder, "the download")
                    out.append(Probed(c.repo, c.revision, c.watched, c.weights, declared, None, why[:300]))
                    continue
                tests = self.tests(behaviour, w)
                if not tests:
                    why = w.problem or "no canaries registered for it and no independent models (--probe-null)"
                    out.append(Probed(c.repo, c.revision, c.watched, c.weights, declared, None, why))
                    continue
                verdict = B.verdict_of(
                    where,
                    c.watched,
                    tests,
                    [n.target for n in w.nulls],
                    bytes_read=fetched.weight_bytes,
                    weight_bytes=fetched.weight_bytes,
                    seconds=time.perf_counter() - started,
                )
                out.append(Probed(c.repo, c.revision, c.watched, c.weights, declared, verdict))
        return out


def check_nulls(nulls: Sequence[str]) -> None:
    """Independent models given as local folders are checked before anything is listed (a bad one is a usage
    error, not a report full of failed probes); `hf:` ones are checked when they are downloaded."""
    from scanner.provenance.probe import check_model

    if len(nulls) == 1:
        raise UsageError("--probe-null: give at least 2 independent models (one cannot calibrate a null)")
    for null in nulls:
        if not null.startswith("hf:"):
            check_model(null)


def probe_report(
    report: WatchReport,
    judged: Iterable[Outcome],
    canaries: dict[str, list[Canary]],
    options: ProbeOptions,
    progress: Callable[[str], None] = lambda _: None,
) -> None:
    """Fill `report.probed`: each suspect's behaviour verdict and the cleared repos' canary verdicts."""
    with_canaries = {name for name, c in canaries.items() if c}
    todo, over = candidates(report, judged, with_canaries, options.max_repos)
    groups: dict[tuple[str, str | None], list[Candidate]] = {}
    for c in todo:
        groups.setdefault((c.repo, c.revision), []).append(c)
    probed: list[Probed] = []
    with tempfile.TemporaryDirectory(prefix="originscan-probe-") as tmp:
        prober = _Prober(report, canaries, options, Path(tmp))
        for group in groups.values():
            try:
                probed += prober.probe(group, progress)
            except Exception as exc:  # one broken repo never stops the others
                why = f"probe failed ({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''})"
                probed += [Probed(c.repo, c.revision, c.watched, c.weights, bool(c.declared), None, why) for c in group]
    report.probed = probed + over


__all__ = ["ProbeOptions", "Skip", "candidates", "check_nulls", "choose_gguf", "fetch", "probe_report", "require_extra"]
