"""The hostile corpus: model repos built to break the scanner, generated on the fly (no committed binaries).

Each `Case` writes one repo folder. `build(repo, marker)` gets the path of a marker file that a payload would
create if anything the repo ships were ever executed (a pickle's REDUCE, a YAML python tag); the test asserts it
never appears. `expect` lists rule ids that must all be in the scan's JSON report; `expect_any` needs one of its rules;
`error_ok` allows the scan to end in one clear error line with exit 2 instead. `pickle` marks expectations that
rest on the pickle analysis.

Large files are sparse (`truncate`): a file that claims gigabytes costs no disk.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from helpers import card_text, safetensors_raw, save_tensors, tiny_llm

HF_TOKEN = "hf_HostileCorpusFakeToken0123456789abcd"
GITHUB_TOKEN = "ghp_HostileCorpusFakeToken0123456789abcd"

# Text that must never reach a report or terminal as it is.
INJECT = (
    "\n::error title=pwned::owned by the model card\n::add-mask::originscan\n::stop-commands::tok\n"
    "##[error]legacy command\n\x1b[31mred\x1b[0m \x1b]0;window title\x07 \x1b]8;;https://evil.example\x1b\\"
    "link\x1b]8;;\x1b\\ \x9b2J \u202eevil"
)
HTML_INJECT = '<script>alert(1)</script><img src=x onerror="alert(2)">'
MD_INJECT = (
    "[click me](https://evil.example/steal) ![pixel](https://evil.example/p.png) @acme/security-team #1 "
    "<https://evil.example/auto> www.evil.example"
)


@dataclass
class Case:
    name: str
    build: Callable[[Path, Path], None]
    expect: frozenset[str] = frozenset()  # every one of these rules is in the scan report
    error_ok: bool = False  # or: the scan ends in exit 2 with one clear error line
    pickle: bool = False  # the expectation needs the pickle analysis (issue 8 part A)
    absent: frozenset[str] = frozenset()  # rules that must not fire
    heavy: bool = False  # generated once per session (big trees)
    expect_any: frozenset[str] = frozenset()  # at least one of these rules is in the scan report


CASES: list[Case] = []


def case(
    name: str,
    *expect: str,
    error_ok: bool = False,
    pickle: bool = False,
    absent: tuple[str, ...] = (),
    heavy: bool = False,
    expect_any: tuple[str, ...] = (),
):
    def register(fn: Callable[[Path, Path], None]):
        CASES.append(
            Case(name, fn, frozenset(expect), error_ok, pickle, frozenset(absent), heavy, frozenset(expect_any))
        )
        return fn

    return register


# -- small builders ----------------------------------------------------------------------------------------------
def write(repo: Path, rel: str, data: str | bytes) -> Path:
    p = repo / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return p


def mit_card(repo: Path) -> None:
    write(repo, "README.md", card_text({"license": "mit"}))


def raw_safetensors(
    repo: Path, header: dict | bytes, data: bytes = b"", header_len: int | None = None, name: str = "model.safetensors"
) -> None:
    mit_card(repo)
    write(repo, name, safetensors_raw(header, data, header_len))


def sparse(path: Path, size: int) -> None:
    with open(path, "r+b" if path.exists() else "wb") as fh:
        fh.truncate(size)


def sparse_safetensors(repo: Path, header: dict, data_len: int) -> None:
    """A header that is honest about a data section of `data_len` bytes that the file holds only as a hole."""
    mit_card(repo)
    hdr = json.dumps(header).encode()
    p = write(repo, "model.safetensors", struct.pack("<Q", len(hdr)) + hdr)
    sparse(p, 8 + len(hdr) + data_len)


# Pickles as raw opcodes: nothing here is ever pickled from a live object or loaded.
def short_unicode(s: str) -> bytes:
    b = s.encode("utf-8", "surrogatepass")
    return b"\x8c" + bytes([len(b)]) + b


def binunicode(s: str) -> bytes:
    b = s.encode("utf-8", "surrogatepass")
    return b"X" + struct.pack("<I", len(b)) + b


def payload_global(marker: Path, module: str = "os", name: str = "system", proto: int = 2) -> bytes:
    """PROTO; GLOBAL module name; ("touch MARKER",); REDUCE; STOP — what loading would run."""
    return b"\x80" + bytes([proto]) + f"c{module}\n{name}\n".encode() + binunicode(f"touch {marker}") + b"\x85R."


def payload_stack_global(marker: Path, module: str = "os", name: str = "system") -> bytes:
    return (
        b"\x80\x04" + short_unicode(module) + short_unicode(name) + b"\x93" + binunicode(f"touch {marker}") + b"\x85R."
    )


def payload_memo(marker: Path) -> bytes:
    """Module and name memoized, then fetched back with BINGET before STACK_GLOBAL; decoy strings in between."""
    return (
        b"\x80\x04"
        + short_unicode("os")
        + b"\x94"
        + short_unicode("system")
        + b"\x94"
        + short_unicode("torch._utils")
        + short_unicode("_rebuild_tensor_v2")
        + b"00"  # pushed, popped
        + b"h\x00h\x01\x93"
        + binunicode(f"touch {marker}")
        + b"\x85R."
    )


def torch_zip(members: dict[str, bytes], compress: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compress) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=compress)
    return buf.getvalue()


def zip_bomb(member: str, head: bytes, mebibytes: int) -> bytes:
    """A zip whose one member is `head` then `mebibytes` MiB of zeros, deflated to about 1/1000 of that.

    Built from one full-flushed deflate block of zeros repeated (a full flush resets the window, so every copy
    decodes the same): seconds of zlib work become none.
    """
    zero = b"\0" * (1 << 20)
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = comp.compress(head) + comp.flush(zlib.Z_FULL_FLUSH)
    block = comp.compress(zero) + comp.flush(zlib.Z_FULL_FLUSH)
    data = first + block * mebibytes + comp.flush(zlib.Z_FINISH)
    crc = zlib.crc32(head)
    for _ in range(mebibytes):
        crc = zlib.crc32(zero, crc)
    size = len(head) + mebibytes * len(zero)
    name = member.encode()
    local = struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, len(data), size, len(name), 0) + name
    central = (
        struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, crc, len(data), size, len(name), 0, 0, 0, 0, 0, 0)
        + name
    )
    end = struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, 1, 1, len(central), len(local) + len(data), 0)
    return local + data + central + end


SAFE_TENSOR_PICKLE = (
    b"\x80\x02}q\x00X\x01\x00\x00\x00wq\x01ctorch._utils\n_rebuild_tensor_v2\nq\x02"
    b"(X\x01\x00\x00\x000q\x03tq\x04Rq\x05s."
)


def pickle_repo(repo: Path, name: str, data: bytes) -> None:
    mit_card(repo)
    write(repo, name, data)


# -- safetensors -------------------------------------------------------------------------------------------------
F32_4 = {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}


@case("st_header_length_2_63", "source.malformed")
def _(repo, marker):
    raw_safetensors(repo, {"w": F32_4}, b"\0" * 16, header_len=2**63)


@case("st_header_100mb_sparse", "source.malformed")
def _(repo, marker):
    mit_card(repo)
    n = 100 * 1024 * 1024 - 1
    p = write(repo, "model.safetensors", struct.pack("<Q", n) + b'{"w": {"dtype": "F32", "shape": [4], "x": "')
    sparse(p, 8 + n + 16)


@case("st_header_not_json", "source.malformed")
def _(repo, marker):
    raw_safetensors(repo, b"\xff\xfenot json at all" + INJECT.encode(), b"")


@case("st_header_is_a_list", "source.malformed")
def _(repo, marker):
    raw_safetensors(repo, [1, 2, 3])  # type: ignore[arg-type]


@case("st_dtype_is_a_list", "source.malformed")
def _(repo, marker):
    raw_safetensors(repo, {"w": {"dtype": ["F32"], "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 16)


@case("st_dtype_is_an_object", "source.malformed")
def _(repo, marker):
    raw_safetensors(repo, {"w": {"dtype": {"F32": 1}, "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 16)


@case("st_dtype_unknown_hostile", "source.malformed")
def _(repo, marker):
    raw_safetensors(
        repo, {"w": {"dtype": "F32" + INJECT + HTML_INJECT, "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 16
    )


@case("st_shape_wrong_types", "source.malformed")
def _(repo, marker):
    raw_safetensors(
        repo,
        {
            "a": {"dtype": "F32", "shape": ["4"], "data_offsets": [0, 16]},
            "b": {"dtype": "F32", "shape": [[4]], "data_offsets": [16, 32]},
            "c": {"dtype": "F32", "shape": [True, 4.0], "data_offsets": [32, 48]},
            "d": {"dtype": "F32", "shape": {"0": 4}, "data_offsets": [48, 64]},
        },
        b"\0" * 64,
    )


@case("st_shape_absurd", "source.malformed")
def _(repo, marker):
    raw_safetensors(repo, {"w": {"dtype": "F32", "shape": [2**62, 2**62, 2**62], "data_offsets": [0, 16]}}, b"\0" * 16)


@case("st_offsets_hostile", "source.malformed")
def _(repo, marker):
    raw_safetensors(
        repo,
        {
            "a": {"dtype": "F32", "shape": [4], "data_offsets": [-16, 0]},
            "b": {"dtype": "F32", "shape": [4], "data_offsets": [0, 10**400]},
            "c": {"dtype": "F32", "shape": [4], "data_offsets": [0.0, 16.0]},
            "d": {"dtype": "F32", "shape": [4], "data_offsets": "0-16"},
        },
        b"\0" * 16,
    )


@case("st_nan_literals", "source.malformed")
def _(repo, marker):
    raw_safetensors(repo, b'{"w": {"dtype": "F32", "shape": [NaN], "data_offsets": [0, Infinity]}}', b"\0" * 16)


@case("st_nested_header", "source.malformed")
def _(repo, marker):
    raw_safetensors(repo, b'{"w": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", b"")


@case("st_metadata_wrong_types", "source.malformed")
def _(repo, marker):
    raw_safetensors(repo, {"__metadata__": [["format", "pt"]], "w": F32_4}, b"\0" * 16)


@case("st_truncated", "source.malformed")
def _(repo, marker):
    mit_card(repo)
    save_tensors(tiny_llm(1), repo / "model.safetensors")
    p = repo / "model.safetensors"
    p.write_bytes(p.read_bytes()[:-1000])


@case("st_overlapping_tensors", "source.malformed")
def _(repo, marker):
    raw_safetensors(
        repo,
        {
            "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
            "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]},
        },
        b"\0" * 16,
    )


@case("st_header_invalid_utf8", "source.malformed")
def _(repo, marker):
    raw_safetensors(repo, b'{"w\xff\xfe": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}', b"\0" * 16)


@case("st_header_lone_surrogate_escape")
def _(repo, marker):
    # Valid JSON: a tensor whose name is a lone surrogate. Names reach compare output and evidence.
    raw_safetensors(repo, b'{"\\ud800w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}', b"\0" * 16)


@case("st_64gb_claimed_sparse")
def _(repo, marker):
    # An honest header over a 64 GB hole: two 1-D tensors of 8 Gi float32 each claim to be the residual stream.
    n = 8 * 1024**3
    sparse_safetensors(
        repo,
        {
            "a.norm.weight": {"dtype": "F32", "shape": [n], "data_offsets": [0, 4 * n]},
            "b.norm.weight": {"dtype": "F32", "shape": [n], "data_offsets": [4 * n, 8 * n]},
        },
        8 * n,
    )


@case("st_wide_hidden_sparse")
def _(repo, marker):
    # Hidden size 2^27 with a 300-row "embedding": 1-D vectors of 512 MB and a 150 GB token matrix, all holes.
    h, v = 2**27, 300
    hdr, off = {}, 0
    for name, shape in (("embed.weight", [v, h]), ("n1.weight", [h]), ("n2.weight", [h]), ("head.weight", [v, h])):
        size = 4 * int(np.prod(shape))
        hdr[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + size]}
        off += size
    sparse_safetensors(repo, hdr, off)


@case("st_50k_tiny_tensors")
def _(repo, marker):
    hdr = {
        f"layers.{i}.norm.weight": {"dtype": "F32", "shape": [1], "data_offsets": [4 * i, 4 * i + 4]}
        for i in range(50_000)
    }
    raw_safetensors(repo, hdr, b"\0" * 200_000)


@case("st_hostile_tensor_names")
def _(repo, marker):
    # The reference model's own weights under hostile names: compare prints the token matrices' names.
    mit_card(repo)
    t = tiny_llm(1)
    renamed = {}
    for i, (k, v) in enumerate(t.items()):
        renamed[f"{k}{INJECT if i % 2 else HTML_INJECT}{MD_INJECT}"] = v
    save_tensors(renamed, repo / "model.safetensors")


@case("st_weight_file_is_a_directory")
def _(repo, marker):
    mit_card(repo)
    (repo / "model.safetensors").mkdir()
    write(repo, "model.safetensors/x", "x")


@case("shard_index_outside_repo")
def _(repo, marker):
    mit_card(repo)
    write(
        repo,
        "model.safetensors.index.json",
        json.dumps(
            {
                "metadata": {"total_size": 10**30},
                "weight_map": {
                    "a": "../../../../etc/passwd",
                    "b": "/etc/passwd",
                    "c": "/dev/zero",
                    "d": "model-00001.safetensors\n::x",
                },
            }
        ),
    )


@case("shard_index_million_entries", "source.too_large")
def _(repo, marker):
    mit_card(repo)
    with open(repo / "model.safetensors.index.json", "w") as fh:
        fh.write('{"metadata": {"total_size": 1}, "weight_map": {')
        fh.write(",".join(f'"t{i}": "model-{i:05}.safetensors"' for i in range(1_000_000)))
        fh.write("}}")


# -- pickles -----------------------------------------------------------------------------------------------------
@case("pkl_legacy_multi_pickle", "security.pickle_unsafe_import", pickle=True)
def _(repo, marker):
    # torch's legacy format: magic number, protocol, sys info, then the object tree — payload in the last.
    magic = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19."
    proto = b"\x80\x02M\xe9\x03."
    sysinfo = b"\x80\x02}q\x00(X\x10\x00\x00\x00protocol_versionq\x01M\xe9\x03u."
    pickle_repo(repo, "pytorch_model.bin", magic + proto + sysinfo + payload_global(marker))


@case("pkl_memo_trick", "security.pickle_unsafe_import", pickle=True)
def _(repo, marker):
    pickle_repo(repo, "pytorch_model.bin", payload_memo(marker))


@case("pkl_torch_hub_load", "security.pickle_unsafe_import", pickle=True)
def _(repo, marker):
    pickle_repo(repo, "model.pt", payload_global(marker, "torch.hub", "load"))


@case("pkl_torch_serialization_load", "security.pickle_unsafe_import", pickle=True)
def _(repo, marker):
    pickle_repo(repo, "model.pt", payload_stack_global(marker, "torch.serialization", "load"))


@case("pkl_numpy_runstring", "security.pickle_unsafe_import", pickle=True)
def _(repo, marker):
    pickle_repo(repo, "model.pkl", payload_global(marker, "numpy.testing._private.utils", "runstring"))


@case("pkl_proto0_inst", "security.pickle_unsafe_import", pickle=True)
def _(repo, marker):
    pickle_repo(repo, "model.ckpt", b"(S'touch " + str(marker).encode() + b"'\nios\nsystem\n.")


@case("pkl_builtins_eval_joblib", "security.pickle_unsafe_import", pickle=True)
def _(repo, marker):
    pickle_repo(repo, "model.joblib", payload_global(marker, "builtins", "eval", proto=4))


@case("pkl_zip_torch_archive", "security.pickle_unsafe_import", pickle=True)
def _(repo, marker):
    pickle_repo(
        repo, "pytorch_model.bin", torch_zip({"archive/data.pkl": payload_global(marker), "archive/version": b"3\n"})
    )


@case("pkl_zip_second_member", "security.pickle_unsafe_import", pickle=True)
def _(repo, marker):
    pickle_repo(
        repo,
        "pytorch_model.bin",
        torch_zip(
            {
                "archive/data.pkl": SAFE_TENSOR_PICKLE,
                "archive/extra/other.pkl": payload_stack_global(marker),
                "archive/version": b"3\n",
            }
        ),
    )


@case("pkl_zip_nested_archive", "security.pickle_unsafe_import", pickle=True)
def _(repo, marker):
    inner = torch_zip({"inner/data.pkl": payload_global(marker)})
    pickle_repo(
        repo,
        "pytorch_model.bin",
        torch_zip({"archive/data.pkl": SAFE_TENSOR_PICKLE, "archive/data/0": inner, "archive/nested.pt": inner}),
    )


@case("pkl_zip_traversal_names", "security.pickle_unsafe_import", pickle=True)
def _(repo, marker):
    pickle_repo(
        repo,
        "pytorch_model.bin",
        torch_zip(
            {
                "../../../../tmp/evil/data.pkl": payload_global(marker),
                "/abs/path/data.pkl": payload_global(marker),
                f"archive/{INJECT}{HTML_INJECT}.pkl": payload_global(marker, "subprocess", "Popen"),
            }
        ),
    )


@case("pkl_zip_bomb", "security.pickle_unsafe_import", pickle=True)
def _(repo, marker):
    pickle_repo(repo, "pytorch_model.bin", zip_bomb("archive/data.pkl", payload_global(marker), 512))


@case("pkl_many_globals", "security.pickle_unsafe_import", pickle=True)
def _(repo, marker):
    # 200 000 distinct GLOBALs (each popped): de-duplicating them must not be quadratic.
    body = b"".join(f"cmod{i}\nfn{i}\n0".encode() for i in range(200_000))
    pickle_repo(repo, "model.pkl", b"\x80\x02" + body + payload_global(marker)[2:])


# The payload sits past the analysis budget: it must be reported as unsafe or as unverifiable, never pass.
@case("pkl_full_of_strings", pickle=True, expect_any=("security.pickle_unsafe_import", "security.pickle_unverifiable"))
def _(repo, marker):
    # 30 MB of one-byte strings pushed and popped: a scanner that keeps them all holds millions of objects.
    one = b"\x8c\x01a0"
    strings = one * (30 * 1024 * 1024 // len(one))
    pickle_repo(repo, "model.pkl", b"\x80\x04" + strings + payload_stack_global(marker)[2:])


@case("pkl_hostile_global_names", "security.pickle_unsafe_import", pickle=True)
def _(repo, marker):
    pickle_repo(repo, "model.pt", payload_stack_global(marker, "os" + INJECT, "system" + HTML_INJECT + MD_INJECT))


@case("pkl_truncated_stream")
def _(repo, marker):
    pickle_repo(repo, "model.pkl", payload_global(marker)[:-6])


# -- model cards (YAML front matter) -----------------------------------------------------------------------------
@case("card_yaml_alias_bomb", "card.malformed")
def _(repo, marker):
    lines = ["---", 'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    lines += ["license: *a9", "---", "# x"]
    write(repo, "README.md", "\n".join(lines) + "\n")


@case("card_front_matter_10mb", "card.malformed")
def _(repo, marker):
    write(repo, "README.md", "---\nlicense: mit\ntags:\n" + "  - x\n" * (10 * 1024 * 1024 // 6) + "---\n# x\n")


@case("card_unterminated_front_matter", "card.malformed")
def _(repo, marker):
    write(repo, "README.md", "---" + " \n" * 100_000 + "license: mit\n" + "\n" * 100_000)


@case("card_many_dashes_lines", "card.malformed")
def _(repo, marker):
    write(repo, "README.md", "---\n" + "---x\n--- y\n" * 40_000 + "license: [\n")


@case("card_python_tags", "card.malformed")
def _(repo, marker):
    write(
        repo,
        "README.md",
        f"---\nlicense: !!python/object/apply:os.system ['touch {marker}']\n"
        f"base_model: !!python/name:os.system\n---\n# x\n",
    )


@case("card_utf8_bom", absent=("license.missing", "card.malformed"))
def _(repo, marker):
    write(repo, "README.md", b"\xef\xbb\xbf" + card_text({"license": "mit"}).encode())


@case("card_utf16", absent=("license.missing", "card.malformed"))
def _(repo, marker):
    write(repo, "README.md", card_text({"license": "mit"}).encode("utf-16"))


@case("card_utf16_without_bom", "source.encoding")
def _(repo, marker):
    write(repo, "README.md", card_text({"license": "mit"}).encode("utf-16-le") + b"\xff\xfe\x00\xd8")


@case("card_binary_garbage", "source.encoding")
def _(repo, marker):
    write(repo, "README.md", bytes(np.random.default_rng(8).integers(0, 256, 64 * 1024, dtype=np.uint8)))


@case("card_nul_filled")
def _(repo, marker):
    write(repo, "README.md", b"---\nlicense: mit\x00\x00\n---\n" + b"\x00" * 100_000)


@case("card_lone_surrogates", "license.unknown")
def _(repo, marker):
    # YAML escapes make lone surrogates inside a perfectly valid card; a CESU-8 byte pair makes one in the body.
    write(
        repo, "README.md", b'---\nlicense: "\\ud800mit\\udfff"\nbase_model: "org/\\udc80name"\n---\n# x \xed\xa0\x80\n'
    )


@case("card_html_injection", "license.unknown")
def _(repo, marker):
    write(
        repo,
        "README.md",
        card_text(
            {
                "license": HTML_INJECT,
                "license_name": "<iframe src=javascript:alert(1)>",
                "license_link": "javascript:alert(document.cookie)",
                "base_model": ["evil/</td></tr></table><script>x</script>"],
                "model_name": '"><svg onload=alert(3)>',
            }
        ),
    )


@case("card_markdown_injection", "license.unknown")
def _(repo, marker):
    write(
        repo,
        "README.md",
        card_text(
            {
                "license": MD_INJECT,
                "license_name": "| a | b |\n| - | - |",
                "base_model": ["[x](https://evil.example)", "@acme/owners"],
                "model_name": "`code` **bold** ~~strike~~ _em_ <details open>",
            }
        ),
    )


@case("card_workflow_commands", "license.unknown")
def _(repo, marker):
    write(
        repo,
        "README.md",
        card_text({"license": INJECT, "base_model": [INJECT.strip()]}, body=INJECT + "\n::set-output name=x::y\n"),
    )


@case("card_ansi_escapes", "license.unknown")
def _(repo, marker):
    # Double-quoted YAML escapes reach the parsed values: CSI, OSC 8 hyperlinks, OSC 52 clipboard, C1 CSI.
    write(
        repo,
        "README.md",
        '---\nlicense: "\\e[2J\\e[31mmit\\e]0;pwned\\a\\e]52;c;ZWNobyBwd25lZA==\\a\\x9b1m"\n'
        'license_name: "\\e]8;;https://evil.example\\e\\\\click\\e]8;;\\e\\\\"\n'
        'base_model: "\\r\\rorg/\\bname\\u202e"\n---\n# x\n',
    )


@case("card_huge_values", "card.malformed")
def _(repo, marker):
    write(
        repo,
        "README.md",
        "---\nlicense: "
        + "x" * 1_000_000
        + "\nbase_model:\n"
        + "".join(f"  - o/{i}\n" for i in range(50_000))
        + "---\n# x\n",
    )


@case("card_wrong_types")
def _(repo, marker):
    write(
        repo,
        "README.md",
        "---\nlicense: {a: [1, {b: 2}]}\nbase_model: {x: 1}\nlicense_name: [1, 2]\n"
        "model-index: 7\nmodel_name: [x]\ntags: .nan\n---\n# x\n",
    )


@case("card_not_a_mapping", "card.malformed")
def _(repo, marker):
    write(repo, "README.md", "---\n- a\n- b\n---\n# x\n")


@case("card_is_a_fifo", absent=("card.malformed",))
def _(repo, marker):
    os.mkfifo(repo / "README.md")
    write(repo, "LICENSE", "MIT License\n")


@case("card_is_a_directory")
def _(repo, marker):
    (repo / "README.md").mkdir()
    write(repo, "README.md/README.md", "x")


# -- JSON --------------------------------------------------------------------------------------------------------
@case("json_deeply_nested", "source.malformed")
def _(repo, marker):
    mit_card(repo)
    write(repo, "config.json", '{"a": ' + "[" * 200_000 + "]" * 200_000 + "}")


@case("json_nested_just_under_recursion_limit")
def _(repo, marker):
    mit_card(repo)
    write(repo, "config.json", '{"a": ' + "[" * 900 + "]" * 900 + ', "hidden_size": 4}')
    write(repo, "tokenizer_config.json", '{"added_tokens_decoder": ' + '{"1": ' * 900 + "{}" + "}" * 901)


@case("json_huge_tokenizer")
def _(repo, marker):
    # 60 MB of short strings: under the tokenizer.json size limit, millions of objects if parsed whole.
    mit_card(repo)
    with open(repo / "tokenizer.json", "w") as fh:
        fh.write('{"added_tokens": [], "model": {"vocab": [')
        fh.write(",".join(['"a"'] * (15 * 1024 * 1024)))
        fh.write("]}}")


@case("json_huge_vocab_object")
def _(repo, marker):
    mit_card(repo)
    with open(repo / "tokenizer.json", "w") as fh:
        fh.write(
            '{"added_tokens": ['
            + ",".join(f'{{"id": {i}, "content": "<t{i}>", "special": true}}' for i in range(150_000))
            + "]}"
        )


@case("json_nan_literals")
def _(repo, marker):
    mit_card(repo)
    write(
        repo,
        "config.json",
        '{"hidden_size": NaN, "vocab_size": Infinity, "rope_theta": -Infinity, '
        '"num_hidden_layers": 1e400, "auto_map": {"AutoModel": NaN}}',
    )


@case("json_bom_and_utf16", "source.malformed")
def _(repo, marker):
    mit_card(repo)
    write(repo, "config.json", b"\xef\xbb\xbf" + json.dumps({"hidden_size": 8}).encode())
    write(repo, "tokenizer_config.json", json.dumps({"model_max_length": 8}).encode("utf-16"))


@case("json_wrong_types")
def _(repo, marker):
    mit_card(repo)
    write(
        repo,
        "config.json",
        json.dumps(
            {
                "hidden_size": "4096",
                "vocab_size": [1],
                "text_config": 7,
                "llm_config": {"hidden_size": {"a": 1}},
                "auto_map": "x" + INJECT,
            }
        ),
    )
    write(
        repo,
        "tokenizer_config.json",
        json.dumps(
            {
                "added_tokens_decoder": {
                    "1": {"content": ["x"]},
                    "x": {"content": "y"},
                    "99999999999999999999999": {"content": "<z>"},
                    "2": "str",
                    "3": {"content": INJECT + HTML_INJECT},
                }
            }
        ),
    )
    write(
        repo,
        "tokenizer.json",
        json.dumps({"added_tokens": [1, {"id": "7", "content": 3}, {"id": 2**70, "content": "a"}]}),
    )


@case("json_huge_integers", "source.malformed")
def _(repo, marker):
    mit_card(repo)
    write(repo, "config.json", '{"vocab_size": ' + "9" * 5000 + "}")


@case("json_4000_digit_integers", absent=("source.malformed",))
def _(repo, marker):
    # Under Python's 4300-digit int-string limit, so json parses them; float() of one overflows (issue 24).
    mit_card(repo)
    huge = "9" * 4000
    keys = ("hidden_size", "num_hidden_layers", "intermediate_size", "num_attention_heads", "vocab_size", "rope_theta")
    body = ", ".join(f'"{k}": {huge}' for k in keys)
    write(repo, "config.json", "{" + body + ', "text_config": {' + body + "}}")
    write(
        repo,
        "tokenizer_config.json",
        '{"added_tokens_decoder": {"' + huge + '": {"content": "<a>"}, "\u00b2": {"content": "<b>"}, '
        '"' + "1" * 5000 + '": {"content": "<c>"}}}',
    )
    write(repo, "tokenizer.json", '{"added_tokens": [{"id": ' + huge + ', "content": "<d>"}]}')
    save_tensors(tiny_llm(7), repo / "model.safetensors")  # so compare and index add read the config too


@case("sig_hostile_bundles", "security.signature_unverified")
def _(repo, marker):
    # Signature bundles that are not what they claim: a certificate that is not DER, a payload that is not base64,
    # JSON nested past the recursion limit, a bundle claiming a public key with a 10 000-character hint.
    mit_card(repo)
    save_tensors(tiny_llm(1), repo / "model.safetensors")
    write(
        repo,
        "model.sig",
        json.dumps(
            {
                "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
                "verificationMaterial": {"x509CertificateChain": {"certificates": [{"rawBytes": "!!" + INJECT}]}},
                "dsseEnvelope": {"payload": "not base64" + INJECT, "payloadType": "x", "signatures": []},
            }
        ),
    )
    write(repo, "nested.sigstore.json", '{"verificationMaterial": ' + "[" * 100_000 + "]" * 100_000 + "}")
    write(repo, "key.sig", json.dumps({"verificationMaterial": {"publicKey": {"hint": "a" * 10_000}}}))


@case("json_lone_surrogates")
def _(repo, marker):
    mit_card(repo)
    write(repo, "config.json", '{"model_type": "\\ud800", "auto_map": {"AutoModel": "m\\udfff.M"}}')
    write(
        repo,
        "tokenizer_config.json",
        json.dumps(
            {"added_tokens_decoder": {"128010": {"content": "\ud800<image>"}, "128011": {"content": "</image>\udfff"}}},
            ensure_ascii=True,
        ),
    )
    write(repo, "modeling_\udc80x.py", "x = 1\n")


# -- the file system ---------------------------------------------------------------------------------------------
@case("fs_names_with_newlines_and_escapes", "security.pickle_weights")
def _(repo, marker):
    mit_card(repo)
    write(repo, f"weights{INJECT}.bin", SAFE_TENSOR_PICKLE)
    write(repo, f"model{HTML_INJECT}{MD_INJECT}.safetensors".replace("/", "\u2215"), b"\0" * 8)
    write(repo, "code\n::error::x.py", "x = 1\n")


@case("fs_non_utf8_names", "security.pickle_weights")
def _(repo, marker):
    mit_card(repo)
    root = os.fsencode(repo)
    for name, data in (
        (b"model-\xff\xfe.bin", SAFE_TENSOR_PICKLE),
        (b"\xed\xa0\x80.safetensors", b"\0" * 8),
        (b"mod\x1b[31m\xc3(.py", b"x = 1\n"),
    ):
        with open(root + b"/" + name, "wb") as fh:
            fh.write(data)


@case("fs_symlink_loops")
def _(repo, marker):
    mit_card(repo)
    os.symlink("b.safetensors", repo / "a.safetensors")
    os.symlink("a.safetensors", repo / "b.safetensors")
    os.symlink("config.json", repo / "config.json")  # links to itself
    os.symlink("config.json", repo / "tokenizer.json")
    os.symlink(".", repo / "loop")
    (repo / "d").mkdir()
    os.symlink("..", repo / "d" / "up")


@case("fs_links_to_devices", "source.symlink_escape")
def _(repo, marker):
    os.symlink("/dev/urandom", repo / "README.md")
    os.symlink("/dev/zero", repo / "config.json")
    os.symlink("/etc/passwd", repo / "LICENSE")
    os.symlink("/dev/zero", repo / "model.safetensors")
    os.symlink("/dev/zero", repo / "pytorch_model.bin")
    os.symlink("/proc/self/environ", repo / "NOTICE")
    os.symlink("/", repo / "root")


@case("fs_fifo_config_json", absent=("source.malformed",))
def _(repo, marker):
    mit_card(repo)
    os.mkfifo(repo / "config.json")
    os.mkfifo(repo / "model.safetensors")
    os.mkfifo(repo / "pytorch_model.bin")


@case("fs_directory_named_config_json")
def _(repo, marker):
    mit_card(repo)
    (repo / "config.json").mkdir()
    write(repo, "config.json/config.json", "{}")
    (repo / "tokenizer_config.json").mkdir()


@case("fs_30_levels_deep", "security.pickle_unsafe_import", pickle=True)
def _(repo, marker):
    mit_card(repo)
    deep = "/".join(f"d{i}" for i in range(30))
    write(repo, f"{deep}/model.bin", payload_global(marker))
    write(repo, f"{deep}/README.md", INJECT)


@case("fs_path_longer_than_path_max")
def _(repo, marker):
    mit_card(repo)
    # 20 levels of 250-character names: 5 000+ characters, more than PATH_MAX. Built with dir fds.
    fd = os.open(repo, os.O_RDONLY)
    try:
        for i in range(20):
            name = f"{i:02}" + "x" * 248
            os.mkdir(name, dir_fd=fd)
            nfd = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        for name, data in (("model.bin", SAFE_TENSOR_PICKLE), ("model.safetensors", b"\0" * 8), ("config.json", b"{}")):
            wfd = os.open(name, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
            os.write(wfd, data)
            os.close(wfd)
    finally:
        os.close(fd)


@case("fs_lfs_pointers_hostile", "security.pickle_weights")
def _(repo, marker):
    mit_card(repo)
    write(
        repo,
        "pytorch_model.bin",
        "version https://git-lfs.github.com/spec/v1\noid sha256:" + "a" * 64 + "\nsize 99999999999999999999999999\n",
    )
    write(
        repo,
        "model.safetensors",
        "version https://git-lfs.github.com/spec/v1\noid sha256:" + "b" * 64 + INJECT + "\nsize -5\n",
    )


@case("fs_100k_files", "source.too_large", heavy=True)
def _(repo, marker):
    mit_card(repo)
    for i in range(100):
        d = repo / f"shard{i:03}"
        d.mkdir()
        for j in range(1001):
            (d / f"f{j}.txt").touch()


def build_case(c: Case, root: Path) -> tuple[Path, Path]:
    """Write case `c` under `root`; returns (repo, marker). The marker lives outside the repo."""
    repo = root / c.name / "repo"
    marker = root / c.name / "PWNED-marker"
    repo.mkdir(parents=True)
    c.build(repo, marker)
    return repo, marker


def build_reference(root: Path) -> Path:
    """A clean tiny model the cases are compared with and that the scan's index holds."""
    repo = root / "reference"
    repo.mkdir(parents=True)
    mit_card(repo)
    save_tensors(tiny_llm(1), repo / "model.safetensors")
    return repo


assert len({c.name for c in CASES}) == len(CASES), "case names must be unique"
