"""Quantized safetensors: which scheme a repo uses, and token rows of the quantized forms that dequantize simply.

Most quantizers leave the token matrices alone (GPTQ, AWQ and bitsandbytes quantize Linear layers only; FP8
checkpoints usually keep embeddings in BF16), so the plain reader finds float token matrices next to packed integer
tensors, which `analyse` ignores. Two forms quantize the token matrices themselves and are read here:
  * MLX (mlx-lm): `X.weight` as uint32 words of `bits`-bit codes, `X.scales` and `X.biases` per group of
    `group_size` values along the row: value = code * scale + bias.
  * FP8 (F8_E4M3 / F8_E5M2) with a `X.weight_scale` / `X.weight_scale_inv` tensor per row or per block.
Anything else (a bitsandbytes 4-bit embedding, say) leaves no comparable token matrix, and the verdict is
`inconclusive` with the reason; never `independent`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from scanner.provenance.model import LiveModel, TokenMatrix, analyse
from scanner.provenance.safetensors import TensorInfo, parallel, read_rows
from scanner.sources.bytesource import ByteSource, coalesce

# Quantization state stored next to packed weights (bitsandbytes absmax / quant maps / SCB, GPTQ zeros, FP8 scales):
# float vectors and matrices whose lengths could pass for a hidden size or a vocabulary in the shape analysis.
QUANT_STATE_SUFFIXES = (
    ".absmax",
    ".quant_map",
    ".nested_absmax",
    ".nested_quant_map",
    ".SCB",
    ".qzeros",
    ".g_idx",
    ".weight_scale",
    ".weight_scale_inv",
    ".input_scale",
)


def quantization_scheme(config: dict[str, Any] | None, tensors: dict[str, TensorInfo]) -> str | None:
    """A short name for the repo's quantization (from config.json, else from tensor names and dtypes)."""
    config = config if isinstance(config, dict) else {}
    qc = config.get("quantization_config")
    if isinstance(qc, dict):
        method = str(qc.get("quant_method") or "").lower()
        if method == "bitsandbytes" or qc.get("load_in_4bit") or qc.get("load_in_8bit"):
            return "bitsandbytes 4-bit" if qc.get("load_in_4bit") or qc.get("_load_in_4bit") else "bitsandbytes 8-bit"
        if method:
            bits = qc.get("bits") or qc.get("w_bit")
            return f"{method} {bits}-bit" if bits else method
    mlx = config.get("quantization")
    if isinstance(mlx, dict) and isinstance(mlx.get("bits"), int):
        return f"mlx {mlx['bits']}-bit"
    names = set(tensors)
    if any(n.endswith(".qweight") for n in names):
        return "gptq/awq"
    if any(n.endswith((".absmax", ".SCB")) or ".quant_state." in n for n in names):
        return "bitsandbytes"
    if any(t.dtype.startswith("F8_") for t in tensors.values()):
        return "fp8"
    return None


@dataclass(frozen=True)
class PackedMatrix:
    """An MLX-quantized 2-D tensor seen as the float matrix it stands for."""

    name: str  # the packed tensor's name (X.weight)
    shape: tuple[int, int]
    bits: int
    group_size: int
    packed: TensorInfo
    scales: TensorInfo
    biases: TensorInfo
    dtype: str = "MLX"
    decodable: bool = True

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def _mlx_params(config: dict[str, Any] | None, prefix: str) -> tuple[int, int] | None:
    q = (config or {}).get("quantization") or (config or {}).get("quantization_config")
    if not isinstance(q, dict):
        return None
    own = q.get(prefix)
    if own is False:
        return None
    if isinstance(own, dict):
        q = own
    bits, group = q.get("bits"), q.get("group_size")
    if isinstance(bits, int) and isinstance(group, int) and bits in (2, 4, 8) and group > 0:
        return bits, group
    return None


def packed_matrices(
    tensors: dict[str, TensorInfo], config: dict[str, Any] | None
) -> tuple[dict[str, PackedMatrix], list[str]]:
    """MLX triplets (uint32 weight + scales + biases) that decode to 2-D float matrices; problems for the rest."""
    out, problems = {}, []
    for name, t in tensors.items():
        if not name.endswith(".weight") or t.dtype != "U32" or len(t.shape) != 2:
            continue
        prefix = name[: -len(".weight")]
        scales, biases = tensors.get(prefix + ".scales"), tensors.get(prefix + ".biases")
        if scales is None or biases is None:
            continue
        params = _mlx_params(config, prefix)
        if params is None:
            problems.append(f"{name}: MLX-quantized with bit width or group size originscan cannot decode")
            continue
        bits, group = params
        cols = t.shape[1] * 32 // bits
        if scales.shape != biases.shape or scales.shape != (t.shape[0], cols // group) or not scales.decodable:
            problems.append(f"{name}: MLX scales/biases do not fit {bits}-bit groups of {group}")
            continue
        out[name] = PackedMatrix(name, (t.shape[0], cols), bits, group, t, scales, biases)
    return out, problems


def _raw_rows(src: ByteSource, t: TensorInfo, rows: list[int], screening: bool = False) -> np.ndarray:
    """Rows of an integer tensor as its exact words (decoding through float32 would lose low bits)."""
    width = t.shape[1] * t.itemsize
    runs = coalesce(rows, width, src.read_cost(screening))  # nearby rows share a request (see ByteSource)

    def fetch(run: tuple[int, int]) -> bytes:
        return src.read(t.start + run[0] * width, (run[1] - run[0] + 1) * width)

    blocks = parallel(fetch, runs)
    words = {
        r: block[(r - first) * width : (r - first + 1) * width]
        for (first, last), block in zip(runs, blocks)
        for r in range(first, last + 1)
    }
    raw = b"".join(words[r] for r in rows)
    return np.frombuffer(raw, dtype="<u4").reshape(len(rows), t.shape[1])


def unpack_mlx(words: np.ndarray, scales: np.ndarray, biases: np.ndarray, bits: int, group: int) -> np.ndarray:
    """MLX packs codes little-end first within each uint32: code j of a word sits at bits [j*bits, (j+1)*bits)."""
    per = 32 // bits
    shifts = (np.arange(per, dtype=np.uint32) * bits)[None, None, :]
    codes = (words[:, :, None] >> shifts) & np.uint32((1 << bits) - 1)
    codes = codes.reshape(len(words), -1, group).astype(np.float32)
    values: np.ndarray = (codes * scales[:, :, None] + biases[:, :, None]).reshape(len(words), -1)
    return values


class DequantizingModel(LiveModel):
    """A `LiveModel` that also reads token matrices stored quantized (MLX packed, FP8 with scales)."""

    def __init__(
        self,
        sources: dict[str, ByteSource],
        config: dict[str, Any] | None = None,
        file_hashes: set[str] | None = None,
        unreadable: list[str] | None = None,
    ):
        super().__init__(sources, config, file_hashes, unreadable)
        self.scheme = quantization_scheme(config, self.tensors)
        self.packed, problems = packed_matrices(self.tensors, config)
        self.problems.extend(problems)
        state = {n for n in self.tensors if n.endswith(QUANT_STATE_SUFFIXES) or ".quant_state." in n}
        if self.packed or state:
            hidden_parts = {n for p in self.packed.values() for n in (p.packed.name, p.scales.name, p.biases.name)}
            visible: list[Any] = [t for n, t in self.tensors.items() if n not in hidden_parts | state]
            self.structure = analyse(visible + list(self.packed.values()), config)
        if self.scheme and not self.structure.token_matrices and self.structure.hidden:
            self.problems.append(
                f"the token matrices are quantized ({self.scheme}) in a form originscan does not dequantize"
            )

    def _fp8_scale(self, name: str, tokens: list[int], cols: int) -> np.ndarray | None:
        """Per-token multipliers (tokens x cols) from an FP8 matrix's scale tensor; None when there is none."""
        prefix = name[: -len(".weight")] if name.endswith(".weight") else name
        s = self.tensors.get(prefix + ".weight_scale") or self.tensors.get(prefix + ".weight_scale_inv")
        if s is None or s.numel <= 1 or not s.decodable:
            return None
        t = self.tensors[name]
        grid = s.shape if len(s.shape) == 2 else (s.shape[0], 1)
        block_r, block_c = math.ceil(t.shape[0] / grid[0]), math.ceil(cols / grid[1])
        srows = read_rows(self.sources[s.file], s, sorted({tok // block_r for tok in tokens}))
        lookup = {r: row for r, row in zip(sorted({tok // block_r for tok in tokens}), srows)}
        per_col = np.arange(cols) // block_c
        return np.stack([lookup[tok // block_r].reshape(-1)[per_col] for tok in tokens])

    def read_token_rows(self, matrices: list[TokenMatrix], tokens: list[int]) -> None:
        super().read_token_rows([m for m in matrices if m.name not in self.packed], tokens)  # packed: own reads

    def token_rows(self, matrix: TokenMatrix, tokens: list[int], dims: list[int] | None = None) -> np.ndarray:
        p = self.packed.get(matrix.name)
        if p is None:
            block = super().token_rows(matrix, tokens, None)
            t = self.tensors[matrix.name]
            if t.dtype.startswith("F8_") and not matrix.transposed:
                scale = self._fp8_scale(matrix.name, tokens, block.shape[1])
                if scale is not None:
                    block = block * scale
            return block if dims is None else block[:, dims]
        missing = [tok for tok in dict.fromkeys(tokens) if (matrix.name, tok) not in self._rows]
        if missing:
            src = self.sources[p.packed.file]
            words = _raw_rows(src, p.packed, missing, self.screening)
            scales = read_rows(self.sources[p.scales.file], p.scales, missing, self.screening)
            biases = read_rows(self.sources[p.biases.file], p.biases, missing, self.screening)
            for tok, row in zip(missing, unpack_mlx(words, scales, biases, p.bits, p.group_size)):
                self._rows[(matrix.name, tok)] = row
        block = np.stack([self._rows[(matrix.name, tok)] for tok in tokens])
        return block if dims is None else block[:, dims]
