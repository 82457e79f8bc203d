"""The CLI end to end against the local Hub: the real huggingface_hub client, range reads, the index."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from synthetic import add_noise, base_model, permute_residual, save

CARD = "---\nlicense: {lic}\n---\n# {name}\n"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scanner.cli", *args], capture_output=True, text=True, timeout=120)


def publish(hub, repo_id: str, tensors, lic: str = "apache-2.0", gated: str | None = None):
    folder = save(tensors, hub.root / repo_id)
    (folder / "README.md").write_text(CARD.format(lic=lic, name=repo_id))
    if gated:
        (hub.root / f"{repo_id}.hub.json").write_text(json.dumps({"gated": gated}))
    return folder


def test_remote_compare_reads_a_fraction(hub):
    a = base_model(1, d=128, vocab=4096)
    publish(hub, "meta/base", a)
    publish(
        hub,
        "mallory/copy",
        {k.replace("model.", "m."): v.astype(np.float16) for k, v in add_noise(permute_residual(a), 0.05).items()},
    )
    publish(hub, "indie/other", base_model(2, d=128, vocab=4096))
    out = cli("compare", "hf:mallory/copy", "hf:meta/base", "--format", "json")
    assert out.returncode == 1, out.stderr  # compare's exit status for "derived"
    v = json.loads(out.stdout)
    assert v["verdict"] == "derived" and v["p_value"] < 1e-8 and v["exit_status"] == 1
    assert 0 < v["bytes_read"] < 0.15 * v["weight_bytes"]
    v = json.loads(cli("compare", "hf:indie/other", "hf:meta/base", "--format", "json").stdout)
    assert v["verdict"] == "independent"


def test_scan_flags_a_disguised_copy_of_a_registered_upstream(hub, tmp_path):
    a = base_model(1)
    publish(hub, "meta/base", a, lic="llama3")
    publish(hub, "mallory/copy", add_noise(a, 0.05))
    publish(hub, "indie/other", base_model(2))
    index = str(tmp_path / "index.sqlite")
    added = cli("index", "add", "hf:meta/base", "--index", index)
    assert added.returncode == 0 and "llama3" in added.stdout, added.stderr
    assert "meta/base" in cli("index", "list", "--index", index).stdout
    out = cli("scan", "hf:mallory/copy", "hf:indie/other", "--index", index, "--format", "json")
    assert out.returncode == 1, out.stderr
    targets = {t["target"]: {f["rule"] for f in t["findings"]} for t in json.loads(out.stdout)["targets"]}
    assert "weights.disguised_copy" in targets["hf:mallory/copy"]
    assert not any(r.startswith("weights.") for r in targets["hf:indie/other"])


def test_gated_repo_is_a_finding_not_a_crash(hub):
    publish(hub, "meta/gated", base_model(1), gated="manual")
    out = cli("scan", "hf:meta/gated", "--format", "json")
    assert "Traceback" not in out.stderr and out.returncode in (0, 1)
    rules = {f["rule"] for f in json.loads(out.stdout)["targets"][0]["findings"]}
    assert "source.unverifiable" in rules


def test_unknown_scheme_is_one_line_exit_2():
    out = cli("scan", "ftp://example/model")
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
