"""`originscan watch --probe`: suspects and repos the weight screen cleared, run against the watched model's canaries
and behaviour (scanner/watch_probe.py), on the local Hub through the real huggingface_hub client.

Torch-free (every `make test`): the refusal without the extra, and the report's behaviour lines in text and JSON.
With torch (`make test-probe`): real tiny Llamas on the local Hub — the watched model with its owner canaries, a
noised copy (a weight suspect), a student of another width trained on the watched model's canary answers (no
weight match: found by its canaries alone), the same kind of student published only as a GGUF file (downloaded,
its header checked, run through a GGUF runtime), an independent model of that width, and a repo over the size
limit.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest
from helpers import run_cli
from test_watch_report import report, suspect

from scanner.provenance import behaviour as B
from scanner.report.watch import watch_text
from scanner.watch_report import WEIGHTS_DERIVED, WEIGHTS_NO_MATCH, Probed, WatchReport, merge_reports

HAVE_TORCH = all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers", "tokenizers"))
needs_torch = pytest.mark.skipif(not HAVE_TORCH, reason="torch/transformers not installed (originscan[probe])")


def _one_error_line(proc) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("originscan:"), proc.stderr
    return lines[0]


# -- torch-free --------------------------------------------------------------------------------------------------
@pytest.mark.skipif(HAVE_TORCH, reason="torch is installed here: the missing-extra error cannot happen")
def test_watch_probe_without_the_extra_is_one_line_before_anything_is_listed(tmp_path):
    line = _one_error_line(
        run_cli("watch", "--probe", "--index", str(tmp_path / "i.sqlite"), "--state", str(tmp_path / "s.sqlite"))
    )
    assert "install originscan[probe]" in line
    assert not (tmp_path / "s.sqlite").exists()  # refused before the state was opened or the Hub listed


def test_probe_options_without_probe_or_with_merge_are_usage_errors(tmp_path):
    assert "--probe-null goes with --probe" in _one_error_line(
        run_cli("watch", "--probe-null", "a", "--probe-null", "b", "--index", str(tmp_path / "i.sqlite"))
    )
    if HAVE_TORCH:
        assert "do not go together" in _one_error_line(run_cli("watch", "--probe", "--merge", "x.json"))


def _verdict(repo: str, verdict: str, p: float, hits: int) -> B.BehaviourVerdict:
    kinds = [True] * 12 + [False] * 12
    test = B.canary_test([True] * hits + [False] * (24 - hits), [], kinds)
    return B.BehaviourVerdict(f"hf:{repo}", "acme/base", verdict, p, test.score, (test,), f"canaries: {test.detail}")


def _probed_report() -> WatchReport:
    r = report(suspects=[suspect("zed/copy", False, []), suspect("fan/ft", True, ["acme/base"])])
    r.probed = [
        Probed("zed/copy", "abc", "acme/base", WEIGHTS_DERIVED, False, _verdict("zed/copy", "derived", 2e-7, 24)),
        Probed("fan/ft", "abc", "acme/base", WEIGHTS_DERIVED, True, None, "no tokenizer files"),
        Probed(
            "kid/student", "def", "acme/base", WEIGHTS_NO_MATCH, False, _verdict("kid/student", "derived", 3e-6, 22)
        ),
        Probed("indie/x", "0f0", "acme/base", WEIGHTS_NO_MATCH, False, _verdict("indie/x", "independent", 0.9, 1)),
    ]
    return r


def test_the_text_report_shows_the_behaviour_verdict_beside_the_weight_verdict():
    text = watch_text(_probed_report())
    lines = text.splitlines()
    copy = next(i for i, ln in enumerate(lines) if "zed/copy derives from acme/base" in ln)
    assert lines[copy + 1].strip().startswith("behaviour: derived (p = 2.0e-07, false-positive rate 0.001")
    assert "reproduced 24 of 24 owner canaries (12 of the reference's 12 wrong answers)" in lines[copy + 1]
    assert any("behaviour: not probed (no tokenizer files)" in ln for ln in lines)
    (student,) = [ln for ln in lines if "kid/student" in ln]
    assert student.strip().startswith("UNDECLARED kid/student behaves like acme/base, its weights do not match")
    assert "indie/x" not in text  # cleared by its behaviour too: nothing to say about it
    assert "probe: 3 behaviour verdict(s) (2 derived), 1 not probed" in text
    # without --probe the text is what it was (tests/test_watch_report.py pins those bytes)
    assert "behaviour" not in watch_text(report(suspects=[suspect("zed/copy", False, [])]))


def test_behaviour_only_suspects_count_as_undeclared_and_the_json_reads_back():
    r = _probed_report()
    assert [p.repo for p in r.undeclared_behaviour] == ["kid/student"]
    doc = r.to_json()
    assert [p["repo"] for p in doc["probed"]] == ["zed/copy", "fan/ft", "kid/student", "indie/x"]
    assert doc["probed"][0]["behaviour"]["kind"] == "behaviour" and doc["probed"][1]["behaviour"] is None
    back = WatchReport.from_json(json.loads(json.dumps(doc)))
    assert back.to_json() == doc
    assert "probed" not in report().to_json()  # a run without --probe says nothing about probing
    merged = merge_reports([back, report(shard="2/2")])
    assert [p.repo for p in merged.undeclared_behaviour] == ["kid/student"]
    bad = json.loads(json.dumps(doc))
    bad["probed"][0]["weights"] = "maybe"
    with pytest.raises(ValueError):
        WatchReport.from_json(bad)


def test_candidates_are_every_suspect_and_cleared_repos_for_models_with_canaries_up_to_the_limit():
    from scanner.watch import Outcome
    from scanner.watch_probe import candidates

    r = report(suspects=[suspect("zed/copy", False, [])])
    judged = [
        Outcome("zed/copy", "abc", None, "rows", "derived", suspects=r.suspects),
        Outcome("kid/a", "1", None, "config", "config.json declares width [48]"),
        Outcome("kid/b", "2", None, "rows", "independent after the full test"),
        Outcome("kid/c", "3", None, "header", "weights of hidden size 96"),
        Outcome("misc/none", "4", None, "listing", "no safetensors or GGUF weight file"),
        Outcome("bad/one", "5", None, "error", "HTTP 500"),
    ]
    todo, over = candidates(r, judged, {"acme/base"}, max_repos=2)
    assert [(c.repo, c.weights, c.declared) for c in todo] == [
        ("zed/copy", WEIGHTS_DERIVED, False),
        ("kid/a", WEIGHTS_NO_MATCH, None),
        ("kid/b", WEIGHTS_NO_MATCH, None),
    ]
    assert [(p.repo, p.skipped) for p in over] == [("kid/c", "over --probe-max-repos 2")]
    # no watched model with canaries: the suspects alone (for the behaviour tests with --probe-null)
    todo, over = candidates(r, judged, set(), max_repos=2)
    assert [c.repo for c in todo] == ["zed/copy"] and over == []


def test_a_gguf_release_is_probed_from_one_unsplit_file_within_the_limit_or_says_why_not():
    from scanner.watch_probe import Skip, choose_gguf

    files = {
        "mmproj-model-f16.gguf": 10,  # a vision projector: not the language model
        "model-IQ1_S.gguf": 20,  # a type with no clear name hint: after the clear ones
        "model-Q4_K_M.gguf": 40,
        "model-Q8_0.gguf": 70,
        "README.md": 1,
    }
    assert choose_gguf(files, 100) == "model-Q4_K_M.gguf"  # a clear type first, then the fewest bytes
    assert choose_gguf(files, 30) == "model-IQ1_S.gguf"  # what fits
    with pytest.raises(Skip, match=r"GGUF file model-IQ1_S.gguf of 20 bytes \(its smallest\), over the limit of 15"):
        choose_gguf(files, 15)
    split = {"big/m-00001-of-00002.gguf": 50, "big/m-00002-of-00002.gguf": 50}
    with pytest.raises(Skip, match=r"split into 2 files; probe runs one unsplit GGUF file"):
        choose_gguf(split, 10**9)
    assert choose_gguf({**split, "m-Q4_0.gguf": 30}, 10**9) == "m-Q4_0.gguf"  # an unsplit one beside it
    with pytest.raises(Skip, match="no safetensors or GGUF model file"):
        choose_gguf({"pytorch_model.bin": 5, "mmproj.gguf": 3}, 10**9)


# -- with torch: real models on the local Hub --------------------------------------------------------------------
N_CANARIES = 24
WORDS = ("if", "for", "while", "try", "with", "class", "def", "del")
PROMPTS = [f"{i} then the statement {w}" for i in range(3) for w in WORDS]


def _config(hidden: int, seed_vocab: int = 400):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=seed_vocab,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
    )


def _save(model, folder: Path, tok: Path, card: dict | None = None) -> Path:
    model.save_pretrained(str(folder), safe_serialization=True)
    for f in tok.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    if card is not None:
        (folder / "README.md").write_text("---\n" + "".join(f"{k}: {v}\n" for k, v in card.items()) + "---\n")
    return folder


def _student(reference, tok_dir: Path, answers: list[list[int]], hidden: int, seed: int, learn: bool):
    """A fresh model of another width; with `learn`, trained on the reference's greedy canary answers (distilled
    on its outputs), else on the same prompts with random answers (it learned something, not the reference)."""
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(str(tok_dir))
    torch.manual_seed(seed)
    model = LlamaForCausalLM(_config(hidden))
    g = torch.Generator().manual_seed(seed)
    own = [torch.randint(5, 390, (len(a),), generator=g).tolist() for a in answers]
    pairs = list(zip(PROMPTS, answers if learn else own))
    rows = [tok(p, add_special_tokens=False)["input_ids"] + a for p, a in pairs]
    width = max(len(r) for r in rows)
    ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])  # the tokenizer's pad id is past the model's vocab
    labels = torch.tensor([r + [-100] * (width - len(r)) for r in rows])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(150):
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    return model.eval()


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    if not HAVE_TORCH:
        pytest.skip("torch/transformers not installed (originscan[probe])")
    import torch
    from gguf import GGMLQuantizationType as Q
    from hf_to_gguf import hf_llama_to_gguf
    from servers.hub_listing import ListingHubServer
    from test_probe import _llama, _tokenizer
    from transformers import AutoTokenizer, LlamaForCausalLM

    root = tmp_path_factory.mktemp("watch-probe")
    _tokenizer(root / "tok")
    hubdir = root / "hub"
    base = _llama(hubdir / "acme" / "base", 0, root / "tok")
    (base / "README.md").write_text("---\nlicense: apache-2.0\n---\n")
    tok = AutoTokenizer.from_pretrained(str(root / "tok"))
    reference = LlamaForCausalLM.from_pretrained(str(base), use_safetensors=True).eval()
    answers, canaries = [], []
    with torch.no_grad():
        for i, prompt in enumerate(PROMPTS):
            ids = torch.tensor([tok(prompt)["input_ids"]])
            out = reference.generate(input_ids=ids, max_new_tokens=4, do_sample=False, pad_token_id=tok.pad_token_id)[
                0, ids.shape[1] :
            ]
            answers.append(out.tolist())
            text = tok.decode(out, skip_special_tokens=True).strip() or "?"
            canaries.append({"prompt": prompt, "answer": text, "correct": i % 2 == 0})
    (root / "canaries.json").write_text(json.dumps({"canaries": canaries}))
    when = 1_790_000_000
    _llama(hubdir / "thief" / "noised", 9, root / "tok", base=base, noise=0.01)
    _save(_student(reference, root / "tok", answers, 48, 5, True), hubdir / "kid" / "student", root / "tok")
    (hubdir / "kid" / "student" / "modeling_evil.py").write_text("raise SystemExit('never run')\n")
    _save(_student(reference, root / "tok", answers, 48, 6, False), hubdir / "indie" / "other", root / "tok")
    # the student again, published only as GGUF (a quantised release: no safetensors, no config.json)
    gguf_student = _save(_student(reference, root / "tok", answers, 48, 7, True), root / "gguf-student", root / "tok")
    hf_llama_to_gguf(gguf_student, hubdir / "gg" / "student-GGUF" / "student-Q8_0.gguf", Q.Q8_0)
    (hubdir / "gg" / "student-GGUF" / "README.md").write_text("---\nlicense: apache-2.0\n---\n")
    nulls = [_llama(root / f"null_{i}", 20 + i, root / "tok") for i in (1, 2)]
    for i, repo in enumerate(("thief/noised", "kid/student", "indie/other", "gg/student-GGUF")):
        for p in (hubdir / repo).rglob("*"):
            os.utime(p, (when + 10 + i, when + 10 + i))
    for p in base.rglob("*"):
        os.utime(p, (when, when))
    server = ListingHubServer(hubdir).start()
    env = {"HF_ENDPOINT": server.url, "HF_HOME": str(root / "hf_home"), "HF_HUB_DISABLE_TELEMETRY": "1"}
    index = root / "index.sqlite"
    add = run_cli(
        "index", "add", "hf:acme/base", "--name", "acme/base", "--index", str(index),
        "--canaries", str(root / "canaries.json"), env=env,
    )  # fmt: skip
    assert add.returncode == 0, add.stderr
    yield {"server": server, "env": env, "index": index, "root": root, "nulls": nulls}
    server.stop()


def _watch(hub, state: str, *extra: str) -> tuple[int, dict, str]:
    proc = run_cli(
        "watch", "--probe", "--index", str(hub["index"]), "--state", str(hub["root"] / state), "-f", "json", *extra,
        env=hub["env"], timeout=600,
    )  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else {}, proc.stderr


@needs_torch
def test_watch_probe_finds_the_student_by_its_canaries_and_probes_the_weight_suspect(hub):
    hub["server"].stats.reset()
    rc, doc, _ = _watch(hub, "canaries.sqlite")
    assert rc == 1, doc
    assert [s["repo"] for s in doc["suspects"]] == ["thief/noised"]  # the weight screen: the copy only
    probed = {p["repo"]: p for p in doc["probed"]}
    assert set(probed) == {"thief/noised", "kid/student", "indie/other", "gg/student-GGUF"}
    copy, student, other = probed["thief/noised"], probed["kid/student"], probed["indie/other"]
    # the student's GGUF release: its one GGUF file downloaded, its header read, run through a GGUF runtime
    gguf_student = probed["gg/student-GGUF"]["behaviour"]
    assert gguf_student is not None, probed["gg/student-GGUF"]
    assert gguf_student["verdict"] == "derived" and gguf_student["p_value"] < gguf_student["false_positive_rate"]
    assert copy["weights"] == "derived" and copy["behaviour"]["verdict"] == "derived"
    assert student["weights"] == "no match" and not student["declared"]
    v = student["behaviour"]
    assert v["verdict"] == "derived" and v["p_value"] < v["false_positive_rate"], v
    (canary,) = v["evidence"]
    assert canary["kind"] == "behaviour-canaries" and canary["score"] >= 0.9
    assert other["behaviour"]["verdict"] != "derived", other
    # never a file a repo ships beyond config, tokenizer and safetensors
    fetched = [p for p in hub["server"].stats.paths() if "/resolve/" in p]
    assert fetched and not any(p.split("?")[0].endswith((".py", ".bin")) for p in fetched), fetched
    text = run_cli(
        "-q", "watch", "--merge", "--index", str(hub["index"]), str(_write(hub["root"] / "r.json", doc)),
        env=hub["env"],
    )  # fmt: skip
    assert text.returncode == 1, text.stderr  # the behaviour-only suspect alone keeps the exit status 1
    assert "UNDECLARED kid/student behaves like acme/base, its weights do not match: derived" in text.stdout


def _write(path: Path, doc: dict) -> Path:
    path.write_text(json.dumps(doc))
    return path


@needs_torch
def test_watch_probe_with_independent_models_runs_the_calibrated_behaviour_tests(hub):
    nulls = [a for n in hub["nulls"] for a in ("--probe-null", str(n))]
    rc, doc, _ = _watch(hub, "nulls.sqlite", *nulls)
    assert rc == 1
    copy = next(p for p in doc["probed"] if p["repo"] == "thief/noised")
    kinds = {e["kind"] for e in copy["behaviour"]["evidence"]}
    assert {"behaviour-idiosyncratic-agreement", "behaviour-hidden-state-cka", "behaviour-canaries"} <= kinds
    assert copy["behaviour"]["verdict"] == "derived" and len(copy["behaviour"]["null_models"]) == 2


@needs_torch
def test_watch_probe_size_limit_and_bad_null_models(hub):
    hub["server"].stats.reset()
    rc, doc, _ = _watch(hub, "small.sqlite", "--probe-max-gb", "0.00001")
    assert rc == 1  # the weight suspect is still one
    assert all(p["behaviour"] is None and "over the limit" in p["skipped"] for p in doc["probed"]), doc["probed"]
    # the students' widths ruled them out before a weight byte was read, and the limit before one was downloaded
    assert not [p for p in hub["server"].stats.paths() if "/kid/student/resolve/" in p and ".safetensors" in p]
    line = _one_error_line(
        run_cli(
            "watch",
            "--probe",
            "--index",
            str(hub["index"]),
            "--probe-null",
            str(hub["root"] / "missing"),
            "--probe-null",
            str(hub["nulls"][0]),
            env=hub["env"],
        )  # fmt: skip
    )
    assert "no such model folder" in line
    assert "at least 2" in _one_error_line(
        run_cli("watch", "--probe", "--index", str(hub["index"]), "--probe-null", str(hub["nulls"][0]), env=hub["env"])
    )
