"""The weights of a snapshot as one `ModelView`, whatever form they take.

The readers of each weight format, keyed by its row in `scanner.file_formats`: `TENSOR_READERS` open a repo's
weights for comparison, `HEADER_READERS` validate every file's header on each scan. A repo is read in the first of
its formats in the table's order: safetensors (plain or quantized) when it has any, else its best GGUF model (one
verdict per repo: of many quant variants or split parts, the one needing the fewest bytes is read). Comparison, the
fingerprint index and the scan all open weights through `open_model`.
"""

from __future__ import annotations

from collections.abc import Callable

from scanner.file_formats import FORMATS, GGUF, SAFETENSORS, FileFormat, format_of
from scanner.provenance import gguf, safetensors
from scanner.provenance.gguf import GGUFModel
from scanner.provenance.model import SourcedView
from scanner.provenance.quantized import DequantizingModel
from scanner.sources.bytesource import ByteSource
from scanner.sources.interface import Snapshot

TENSOR_READERS: dict[FileFormat, Callable[[Snapshot], SourcedView]] = {
    SAFETENSORS: DequantizingModel.from_snapshot,
    GGUF: GGUFModel.from_snapshot,
}
# A header parser, and the error it raises for a file that breaks its format (any other OSError: could not read).
HEADER_READERS: dict[FileFormat, tuple[Callable[[ByteSource, str], object], type[ValueError]]] = {
    SAFETENSORS: (safetensors.parse_header, safetensors.SafetensorsError),
    GGUF: (gguf.parse_header, gguf.GGUFError),
}


def open_model(snap: Snapshot) -> SourcedView:
    present = {format_of(f.path) for f in snap.weight_files()}
    for fmt in FORMATS:
        if fmt in present and fmt in TENSOR_READERS:
            return TENSOR_READERS[fmt](snap)
    return DequantizingModel.from_snapshot(snap)  # nothing readable: an empty view that says why (pickles, pointers)
