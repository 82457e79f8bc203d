"""The weights of a snapshot as one `ModelView`, whatever form they take.

safetensors (plain or quantized) when the repo has any, else its best GGUF model (one verdict per repo: of many
quant variants or split parts, the one needing the fewest bytes is read). Comparison, the fingerprint index and
the scan all open weights through `open_model`.
"""

from __future__ import annotations

from scanner.provenance.gguf import GGUFModel
from scanner.provenance.model import SourcedView
from scanner.provenance.quantized import DequantizingModel
from scanner.sources.interface import Snapshot


def open_model(snap: Snapshot) -> SourcedView:
    paths = [f.path.lower() for f in snap.weight_files()]
    if any(p.endswith(".gguf") for p in paths) and not any(p.endswith(".safetensors") for p in paths):
        return GGUFModel.from_snapshot(snap)
    return DequantizingModel.from_snapshot(snap)
