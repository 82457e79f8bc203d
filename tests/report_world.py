"""Scanned targets for the report tests (HTML, browser, AI-BOMs): real repos, real safetensors, a real index.

* `pruned`: a registered upstream (6 layers) with layer 2 cut out, the rest renumbered and 1 % noise added; its card
  carries hostile text in every field a report shows (base_model, datasets, model_name, licence name);
* `finetune`: a declared fine-tune of the same upstream (noise only), whose card says so;
* `multi-hop`: a lineage through two unknown fine-tunes up to a knowledge-base upstream, read from their own cards
  (the card fetcher answers from a dict, as the Hub client would from the cards);
* `hf:gone/model`: a target that could not be fetched (no facts).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from helpers import make_repo, noised, register, scan, tiny_llm
from scanner.evidence.card import CardFacts
from scanner.evidence.lineage import LineageInput, infer_lineage
from scanner.findings import Finding, Severity, TargetFacts, TargetReport
from scanner.knowledge import knowledge_base

HOSTILE = '</text><script>alert(1)</script><svg onload=alert(2)>\x1b[31m'
UPSTREAM = "acme/base-6l"
CUT_LAYER = 2
LAYERS = 6


def pruned(t: dict[str, np.ndarray], cut: int) -> dict[str, np.ndarray]:
    """Drop decoder layer `cut` and renumber the layers above it (a depth-pruned derivative)."""
    out = {}
    for k, v in t.items():
        parts = k.split(".")
        if "layers" in parts:
            i = parts.index("layers") + 1
            n = int(parts[i])
            if n == cut:
                continue
            parts[i] = str(n - 1 if n > cut else n)
        out[".".join(parts)] = v
    return out


@dataclass
class World:
    reports: list[TargetReport]
    pruned_repo: Path
    pruned_weights_sha256: str


def build(tmp: Path) -> World:
    base = tiny_llm(11, layers=LAYERS)
    up = make_repo(tmp, "upstream", card={"license": "apache-2.0"}, weights={"model.safetensors": base})
    index = register(tmp / "index.sqlite", up, UPSTREAM, "apache-2.0")
    hostile_card = {"license": "apache-2.0", "base_model": f"evil/{HOSTILE}", "pipeline_tag": "text-generation",
                    "datasets": [f"data/{HOSTILE}"], "model_name": f"Pruned {HOSTILE}", "library_name": "transformers"}
    pruned_repo = make_repo(tmp, "pruned", card=hostile_card,
                            weights={"model.safetensors": noised(pruned(base, CUT_LAYER), 0.01)})
    finetune = make_repo(tmp, "finetune", card={"license": "apache-2.0", "base_model": UPSTREAM,
                                                "base_model_relation": "finetune"},
                         weights={"model.safetensors": noised(base, 0.05, seed=9)})
    gone = TargetReport("hf:gone/model", [Finding("source.unreachable", Severity.medium, "HTTP 503 after 3 tries")],
                        error="HTTP 503 after 3 tries")  # what a sweep records for a repo it cannot fetch
    reports = [scan(pruned_repo, index=index), scan(finetune, index=index), multi_hop_report(), gone]
    digest = hashlib.sha256((pruned_repo / "model.safetensors").read_bytes()).hexdigest()
    return World(reports, pruned_repo, digest)


CHAIN = {"someone/ft-of-ft": ["someone/ft"], "someone/ft": ["meta-llama/Meta-Llama-3-8B"]}


def multi_hop_report() -> TargetReport:
    """A model two unknown fine-tunes below Llama 3, known from the intermediate models' own cards."""
    card = CardFacts("README.md", {"license": "llama3", "base_model": "someone/ft-of-ft"})
    lineage = infer_lineage(LineageInput(name="me/multi-hop", card=card,
                                         fetch_card=lambda repo: CardFacts("README.md", {"base_model": CHAIN[repo]})
                                         if repo in CHAIN else None), knowledge_base())
    return TargetReport("hf:me/multi-hop", [], facts=TargetFacts("me/multi-hop", "hf", card.metadata, lineage))
