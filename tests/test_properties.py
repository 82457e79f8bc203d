"""Property-based tests (Hypothesis): random JSON files, card YAML front matter, safetensors headers and GGUF
key/values through the parsers and the whole scan (with an index, so weights are compared too).

The property: every input ends in a report, which is a finding where the input is bad, or in a clean SourceError /
UsageError (the CLI's one error line, exit 2). Any other exception is a crash. The report must also render as JSON
and SARIF (a value a parser let through may break a renderer instead).

Examples are bounded and derandomized, so `make test` stays quick and gives the same examples on every run;
`HYPOTHESIS_PROFILE=deep` runs many more, freshly random each time.
"""

from __future__ import annotations

import json
import math
import os
import struct
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from gguf import GGMLQuantizationType, GGUFValueType
from helpers import card_text, register, save_tensors, tiny_llm
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from scanner.errors import SourceError, UsageError
from scanner.evidence import config as config_evidence
from scanner.evidence.card import load_yaml, split_front_matter
from scanner.evidence.gguf import facts_from_header
from scanner.knowledge import catalogue, knowledge_base
from scanner.pipeline import scan_target
from scanner.policy import Policy
from scanner.provenance import gguf as gguf_parser
from scanner.provenance import safetensors as st_parser
from scanner.provenance.index import Index
from scanner.report.render import render
from scanner.sources.bytesource import BytesByteSource

settings.register_profile(
    "ci",
    max_examples=25,
    derandomize=True,
    database=None,
    deadline=timedelta(seconds=10),  # one tiny repo's scan takes milliseconds; seconds means something went wrong
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("deep", max_examples=1500, deadline=timedelta(seconds=10), database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
# Parsers alone take microseconds an example: they get many more than the whole-scan tests.
PARSER_EXAMPLES = settings().max_examples * 12

pytestmark = pytest.mark.timeout(600)

HUGE = 10**3999  # 4000 digits: json parses it, float() of it overflows
NASTY_STRINGS = ["\ud800", "x\udfff", "\x1b[31m", "::error::x", "<script>", "\u202e", "", " ", "\x00", "é" * 3]
# The keys the config checks read (their signature keys and the lineage keys), so examples hit the code that parses them.
SIGNATURE_KEYS = [
    *config_evidence.SIGNATURE_KEYS,
    "rope_scaling",
    "eos_token_id",
    "model_type",
    "architectures",
    "auto_map",
    "text_config",
    "llm_config",
    "base_model_name_or_path",
]

numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**4200), max_value=10**4200),
    st.sampled_from([0, -1, 2**63, 2**64, HUGE, -HUGE, 128256, 4096]),
    st.floats(allow_nan=True, allow_infinity=True),
)
strings = st.one_of(st.text(max_size=40), st.sampled_from(NASTY_STRINGS))
scalars = st.one_of(st.none(), st.booleans(), numbers, strings)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(st.one_of(st.sampled_from(SIGNATURE_KEYS), strings), inner, max_size=5),
    ),
    max_leaves=25,
)


@st.composite
def config_docs(draw) -> Any:
    """A real upstream's recorded config with some keys replaced (so the matching code is reached), or any JSON."""
    kb = knowledge_base()
    if draw(st.booleans()) and kb.upstreams:
        name = draw(st.sampled_from(sorted(kb.upstreams)))
        doc = dict(kb.upstreams[name].config)
        for key in draw(st.lists(st.sampled_from(SIGNATURE_KEYS), max_size=4)):
            doc[key] = draw(json_values)
        return doc
    return draw(json_values)


@st.composite
def tokenizer_docs(draw) -> tuple[Any, Any]:
    decoder = draw(
        st.dictionaries(
            st.one_of(st.integers(min_value=0).map(str), st.sampled_from([str(HUGE), "²", "１２", "-1"]), strings),
            st.one_of(st.fixed_dictionaries({"content": strings}), json_values),
            max_size=6,
        )
    )
    added = draw(st.lists(st.one_of(st.fixed_dictionaries({"id": numbers, "content": strings}), json_values)))
    return {"added_tokens_decoder": decoder}, {"added_tokens": added, "model": draw(json_values)}


# -- the harness ---------------------------------------------------------------------------------------------------
_WORK = Path(tempfile.mkdtemp(prefix="originscan-properties-"))
_INDEX: Index | None = None


def index() -> Index:
    """An index holding one clean tiny model, so scans compare the weights they find."""
    global _INDEX
    if _INDEX is None:
        ref = _WORK / "reference"
        ref.mkdir(parents=True, exist_ok=True)
        (ref / "README.md").write_text(card_text({"license": "mit"}))
        save_tensors(tiny_llm(1), ref / "model.safetensors")
        _INDEX = register(_WORK / "index.sqlite", ref, "reference/tiny", "mit")
    return _INDEX


def fresh_repo(files: dict[str, bytes]) -> Path:
    repo = Path(tempfile.mkdtemp(dir=_WORK))
    if "README.md" not in files:
        (repo / "README.md").write_text(card_text({"license": "mit"}))
    for rel, data in files.items():
        (repo / rel).write_bytes(data)
    return repo


def scan_survives(files: dict[str, bytes]) -> set[str] | None:
    """Scan a repo of `files`: the rules it reported, or None for a clean error. Anything else propagates."""
    repo = fresh_repo(files)
    try:
        report = scan_target(str(repo), Policy(), index())
    except (SourceError, UsageError) as exc:
        assert str(exc).strip() and "\n" not in str(exc).strip()
        return None
    for fmt in ("json", "sarif"):
        json.loads(render([report], fmt, catalogue(), version="0"))
    return {f.rule for f in report.findings}


def dumps(value: Any) -> bytes:
    """JSON as a hostile writer would send it: NaN and Infinity literals kept, lone surrogates as escapes."""
    return json.dumps(value, ensure_ascii=True, allow_nan=True).encode()


# -- JSON files ----------------------------------------------------------------------------------------------------
@given(config=config_docs(), tokenizers=tokenizer_docs(), extra=json_values)
def test_random_json_files_give_a_report(config, tokenizers, extra):
    tokenizer_config, tokenizer_json = tokenizers
    rules = scan_survives(
        {
            "config.json": dumps(config),
            "tokenizer_config.json": dumps(tokenizer_config),
            "tokenizer.json": dumps(tokenizer_json),
            "generation_config.json": dumps(extra),
            "adapter_config.json": dumps(extra),
        }
    )
    if rules is not None and not isinstance(config, dict):
        assert "source.malformed" in rules  # a config.json that is not an object is reported, not ignored


@given(raw=st.binary(max_size=300), prefix=st.sampled_from([b"", b"{", b'{"hidden_size": ', b"\xef\xbb\xbf{"]))
def test_random_bytes_as_json_give_a_report(raw, prefix):
    scan_survives({"config.json": prefix + raw, "tokenizer_config.json": prefix + raw})


# -- card front matter ---------------------------------------------------------------------------------------------
card_keys = st.sampled_from(["license", "license_name", "license_link", "base_model", "model_name", "model-index"])
card_values = st.one_of(json_values, st.lists(strings, max_size=4))


@given(meta=st.dictionaries(st.one_of(card_keys, strings), card_values, max_size=6), body=st.text(max_size=200))
def test_random_card_metadata_gives_a_report(meta, body):
    try:
        front = yaml.safe_dump(meta, allow_unicode=True)
    except (yaml.YAMLError, ValueError):  # a value PyYAML itself cannot write (a 4000-digit int past its limit)
        return
    scan_survives({"README.md": f"---\n{front}---\n{body}".encode("utf-8", "surrogatepass")})


yaml_fragments = st.sampled_from(
    [
        "license: ",
        "base_model:\n  - ",
        "&a [1]\n",
        "*a\n",
        "!!python/object/apply:os.system ['true']\n",
        "? ",
        ": ",
        "- ",
        "{",
        "[",
        "'",
        '"',
        "\\x",
        "\t",
        "\n",
        "---\n",
        "...\n",
        "%YAML 1.1\n",
        "!!binary AAAA\n",
        "9" * 5000,
        "1e400",
        ".nan",
        "<<: *a\n",
    ]
)


@given(parts=st.lists(st.one_of(yaml_fragments, st.text(max_size=20)), max_size=20))
def test_random_front_matter_text_gives_a_report(parts):
    text = "---\n" + "".join(parts) + "\n---\n# body\n"
    split = split_front_matter(text)
    if split is not None:
        try:
            load_yaml(split[0])
        except (yaml.YAMLError, ValueError, RecursionError):
            pass  # the card reader turns these into card.malformed; the scan below must show it did
    rules = scan_survives({"README.md": text.encode("utf-8", "surrogatepass")})
    assert rules is not None  # a card never makes the whole target unreadable


# -- safetensors headers -------------------------------------------------------------------------------------------
DTYPES = sorted(st_parser.DTYPES)


@st.composite
def safetensors_files(draw) -> bytes:
    """Entries that are honest (so the comparison code runs), wrong in size only, or anything at all."""
    entries: dict[str, Any] = {}
    data = b""
    for i in range(draw(st.integers(0, 5))):
        name = draw(st.one_of(st.sampled_from(["model.embed_tokens.weight", "lm_head.weight", "norm.weight"]), strings))
        kind = draw(st.sampled_from(["honest", "wrong_size", "anything"]))
        dtype: Any = draw(st.sampled_from(DTYPES))
        shape: Any = draw(st.lists(st.integers(0, 16), max_size=3))
        if kind == "honest":
            n = math.prod(shape) * st_parser.DTYPES[dtype][0]
            offsets: Any = [len(data), len(data) + n]
            data += draw(st.binary(min_size=n, max_size=n)) if n <= 256 else os.urandom(n)
        elif kind == "wrong_size":  # valid types and offsets, a shape claiming anything up to 10**64000 elements
            shape = draw(st.lists(st.one_of(st.integers(0, 64), st.sampled_from([HUGE, 2**63, 2**64])), max_size=16))
            a, b = sorted(draw(st.lists(st.integers(0, len(data)), min_size=2, max_size=2)))
            offsets = [a, b]
        else:
            dtype = draw(st.one_of(st.sampled_from(DTYPES), json_values))
            shape = draw(st.one_of(st.lists(numbers, max_size=17), json_values))
            offsets = draw(st.one_of(st.lists(numbers, min_size=2, max_size=2), json_values))
        entries[f"{name}{i}" if name in entries else name] = {"dtype": dtype, "shape": shape, "data_offsets": offsets}
    if draw(st.booleans()):
        entries["__metadata__"] = draw(json_values)
    header = dumps(entries)
    claimed = draw(
        st.one_of(
            st.just(len(header)),
            st.just(len(header)),
            st.integers(0, 2**64 - 1),
            st.sampled_from([0, 1, 7, 3 << 30, 2**64 - 1]),
        )
    )
    return struct.pack("<Q", claimed) + header + data


@settings(max_examples=PARSER_EXAMPLES)
@given(blob=safetensors_files())
def test_random_safetensors_headers_parse_or_raise_their_error(blob):
    try:
        st_parser.parse_header(BytesByteSource(blob, "one.safetensors"), "one.safetensors")
    except st_parser.SafetensorsError as exc:
        assert str(exc).startswith("one.safetensors")
        event("refused")
    else:
        event("parsed")


@given(blob=safetensors_files())
def test_random_safetensors_headers_give_a_report(blob):
    assert scan_survives({"model.safetensors": blob}) is not None


# -- GGUF key/values -----------------------------------------------------------------------------------------------
G = GGUFValueType
_SCALAR_FORMATS = {
    G.UINT8: "B",
    G.INT8: "b",
    G.UINT16: "H",
    G.INT16: "h",
    G.UINT32: "I",
    G.INT32: "i",
    G.FLOAT32: "f",
    G.BOOL: "?",
    G.UINT64: "Q",
    G.INT64: "q",
    G.FLOAT64: "d",
}
GGUF_KEYS = [
    "general.architecture",
    "general.name",
    "general.license",
    "general.alignment",
    "general.base_model.count",
    "general.base_model.0.repo_url",
    "general.source.repo_url",
    "llama.embedding_length",
    "llama.block_count",
    "llama.feed_forward_length",
    "llama.attention.head_count",
    "llama.attention.head_count_kv",
    "llama.rope.freq_base",
    "llama.vocab_size",
    "llama.context_length",
    "tokenizer.ggml.tokens",
    "tokenizer.ggml.token_type",
]


def _gguf_string(b: bytes) -> bytes:
    return struct.pack("<Q", len(b)) + b


rarely_false = st.integers(0, 9).map(bool)  # False one time in ten: one field at a time goes wrong


@st.composite
def gguf_scalar(draw, vtype: int) -> bytes:
    if vtype == G.STRING:
        return _gguf_string(
            draw(st.one_of(st.binary(max_size=30), strings.map(lambda s: s.encode("utf-8", "replace"))))
        )
    fmt = _SCALAR_FORMATS[G(vtype)]
    if fmt in "fd":
        return struct.pack("<" + fmt, draw(st.floats(width=32 if fmt == "f" else 64)))
    if fmt == "?":
        return struct.pack("<B", draw(st.integers(0, 255)))  # GGUF bools that are neither 0 nor 1
    bits = struct.calcsize(fmt) * 8
    lo, hi = (0, 2**bits - 1) if fmt.isupper() else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    return struct.pack("<" + fmt, draw(st.one_of(st.integers(lo, hi), st.sampled_from([lo, hi, 0, 1]))))


@st.composite
def gguf_value(draw) -> bytes:
    # Mostly valid types (so key/values parse and the evidence reads them), now and then any type at all.
    vtype = draw(st.sampled_from(list(G)).map(int)) if draw(rarely_false) else draw(st.integers(0, 2**32 - 1))
    if vtype == G.ARRAY:
        item = draw(st.sampled_from(list(G)).map(int)) if draw(rarely_false) else draw(st.integers(0, 20))
        count = draw(st.integers(0, 8))
        if item in _SCALAR_FORMATS or item == G.STRING:
            body = b"".join(draw(gguf_scalar(item)) for _ in range(count))
        else:
            body = b""
        claimed = count if draw(rarely_false) else draw(st.integers(0, 2**64 - 1))
        return struct.pack("<IIQ", vtype, item, claimed) + body
    if vtype in _SCALAR_FORMATS or vtype == G.STRING:
        return struct.pack("<I", vtype) + draw(gguf_scalar(vtype))
    return struct.pack("<I", vtype) + draw(st.binary(max_size=8))


@st.composite
def gguf_files(draw) -> bytes:
    kvs = [
        _gguf_string(draw(st.one_of(st.sampled_from(GGUF_KEYS), strings).map(lambda s: s.encode("utf-8", "replace"))))
        + draw(gguf_value())
        for _ in range(draw(st.integers(0, 8)))
    ]
    # One small honest F32 tensor (the embedding), or a random tensor entry.
    d, vocab = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    if draw(rarely_false):
        dims, qtype, offset = [d, vocab], int(GGMLQuantizationType.F32), 0
    else:
        dims = draw(st.lists(st.integers(0, 2**64 - 1), min_size=0, max_size=5))
        qtype, offset = draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**64 - 1))
    tensor = (
        _gguf_string(b"token_embd.weight")
        + struct.pack("<I", len(dims))
        + b"".join(struct.pack("<Q", x) for x in dims)
        + struct.pack("<IQ", qtype, offset)
    )
    n_kv = len(kvs) if draw(rarely_false) else draw(st.integers(0, 2**64 - 1))
    version = 3 if draw(rarely_false) else draw(st.sampled_from([1, 2, 4, 0x03000000]))
    head = b"GGUF" + struct.pack("<IQQ", version, 1, n_kv) + b"".join(kvs) + tensor
    head += b"\0" * (-len(head) % 32)
    return head + os.urandom(4 * d * vocab)


# Found by the deep profile: tokenizer.ggml.tokens typed as an array of numbers (an internal error before the fix).
NUMERIC_TOKENS = (
    b"GGUF"
    + struct.pack("<IQQ", 3, 1, 1)
    + _gguf_string(b"tokenizer.ggml.tokens")
    + struct.pack("<IIQ", 9, 0, 1)
    + b"\x00"
    + _gguf_string(b"token_embd.weight")
    + struct.pack("<IQQIQ", 2, 1, 1, 0, 0)
)
NUMERIC_TOKENS += b"\0" * (-len(NUMERIC_TOKENS) % 32) + b"\0" * 4


@settings(max_examples=PARSER_EXAMPLES)
@given(blob=gguf_files())
@example(blob=NUMERIC_TOKENS)
def test_random_gguf_key_values_parse_or_raise_their_error(blob):
    try:
        header = gguf_parser.parse_header(BytesByteSource(blob, "one.gguf"), "one.gguf")
    except gguf_parser.GGUFError as exc:
        assert str(exc).startswith("one.gguf")
        event("refused")
    else:
        facts_from_header(header)  # the evidence read from the key/values (licence, config, tokens)
        event(f"parsed, {len(header.metadata)} keys")


@given(blob=gguf_files())
@example(blob=NUMERIC_TOKENS)
def test_random_gguf_key_values_give_a_report(blob):
    assert scan_survives({"model.gguf": blob}) is not None
