"""Remote `compare` benchmark: two models of a few hundred MB served by the local Hub server (no network),
compared through the real huggingface_hub client and HTTP Range reads. Prints bytes read as a fraction of the
weight bytes, HTTP requests and seconds, beside the baseline of downloading both models whole.

    .venv/bin/python bench/remote_compare.py [--hidden 1024] [--vocab 32000] [--layers 4]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from servers.hub import HubServer  # noqa: E402
from synthetic import add_noise, base_model, permute_residual  # noqa: E402


def disguise(t: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The Llama3-V recipe: permute the hidden axis, add 5 % noise, rename the tensors."""
    noised = add_noise(permute_residual(t), 0.05)
    return {k.replace("model.", "vison."): v.astype(np.float16) for k, v in noised.items()}


def publish(root: Path, repo: str, tensors) -> int:
    folder = root / repo
    folder.mkdir(parents=True)
    (folder / "README.md").write_text("---\nlicense: apache-2.0\n---\n")
    save_file(tensors, str(folder / "model.safetensors"))
    return (folder / "model.safetensors").stat().st_size


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--layers", type=int, default=4)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "hub"
        base = base_model(1, a.hidden, a.vocab, a.layers, int(a.hidden * 2.75), np.float16)
        size = publish(root, "upstream/base", base)
        publish(root, "mallory/copy", disguise(base))
        del base
        publish(root, "indie/other", base_model(2, a.hidden, a.vocab, a.layers, int(a.hidden * 2.75), np.float16))
        server = HubServer(root).start()
        os.environ["HF_ENDPOINT"] = server.url
        os.environ["ORIGINSCAN_CACHE"] = str(Path(tmp) / "cache")
        from scanner.pipeline import open_snapshot
        from scanner.provenance.compare import compare_snapshots

        print(f"model size: {size / 1e6:.1f} MB each (hidden {a.hidden}, vocab {a.vocab}, {a.layers} layers, fp16)")
        print(
            f"{'pair':28} {'verdict':12} {'bytes read':>12} {'weight bytes':>14} {'fraction':>9} "
            f"{'requests':>9} {'seconds':>8} | full-download baseline bytes"
        )
        for suspect in ("mallory/copy", "indie/other"):
            server.stats.reset()
            t0 = time.perf_counter()
            v = compare_snapshots(open_snapshot(f"hf:{suspect}"), open_snapshot("hf:upstream/base"))
            dt = time.perf_counter() - t0
            print(
                f"{suspect + ' vs base':28} {v.verdict:12} {v.bytes_read:>12,} {v.weight_bytes:>14,} "
                f"{100 * v.bytes_read / v.weight_bytes:>8.3f}% {server.stats.requests:>9} {dt:>8.2f} | "
                f"{v.weight_bytes:,} (100 %)"
            )
        server.stop()


if __name__ == "__main__":
    main()
