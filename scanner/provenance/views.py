"""The weights of a snapshot as one `ModelView`, whatever form they take.

The readers of each weight format, keyed by its row in `scanner.file_formats`: `TENSOR_READERS` open a repo's
weights for comparison, `HEADER_READERS` validate every file's header on each scan. A repo is read in the first of
its formats in the table's order: safetensors (plain or quantized) when it has any, else its best GGUF model (one
verdict per repo: of many quant variants or split parts, the one needing the fewest bytes is read). Comparison, the
fingerprint index and the scan all open weights through `open_model`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from scanner.file_formats import FORMATS, GGUF, SAFETENSORS, FileFormat, format_of
from scanner.sources.bytesource import ByteSource
from scanner.sources.interface import Snapshot

if TYPE_CHECKING:
    from scanner.provenance.model import SourcedView

# The readers load with their first use (functions, not module imports): a scan that validates a safetensors
# header imports neither the GGUF reader nor the tensor views and numpy.
HeaderReader = tuple[Callable[[ByteSource, str], object], type[ValueError]]


def _safetensors_view(snap: Snapshot) -> SourcedView:
    from scanner.provenance.quantized import DequantizingModel

    return DequantizingModel.from_snapshot(snap)


def _gguf_view(snap: Snapshot) -> SourcedView:
    from scanner.provenance.gguf import GGUFModel

    return GGUFModel.from_snapshot(snap)


def _safetensors_header() -> HeaderReader:
    from scanner.provenance import safetensors

    return safetensors.parse_header, safetensors.SafetensorsError


def _gguf_header() -> HeaderReader:
    from scanner.provenance import gguf

    return gguf.parse_header, gguf.GGUFError


TENSOR_READERS: dict[FileFormat, Callable[[Snapshot], SourcedView]] = {SAFETENSORS: _safetensors_view, GGUF: _gguf_view}
# Each format's header parser and the error it raises for a file that breaks its format (any other OSError: could
# not read), as a function that loads them.
HEADER_READERS: dict[FileFormat, Callable[[], HeaderReader]] = {SAFETENSORS: _safetensors_header, GGUF: _gguf_header}


def open_model(snap: Snapshot) -> SourcedView:
    present = {format_of(f.path) for f in snap.weight_files()}
    for fmt in FORMATS:
        if fmt in present and fmt in TENSOR_READERS:
            return TENSOR_READERS[fmt](snap)
    return _safetensors_view(snap)  # nothing readable: an empty view that says why (pickles, pointers)
