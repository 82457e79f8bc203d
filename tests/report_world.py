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
from scanner.findings import Finding, Severity
from scanner.knowledge import knowledge_base
from scanner.provenance.code import CodeStore
from scanner.results import TargetFacts, TargetReport

HOSTILE = "</text><script>alert(1)</script><svg onload=alert(2)>\x1b[31m"
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


# the upstream's modelling code (written for this test), and the suspect's copy with every name changed
UPSTREAM_CODE = '''"""Acme decoder blocks."""
import math

import torch
from torch import nn


class AcmeRMSNorm(nn.Module):
    def __init__(self, hidden_size, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states):
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states


class AcmeAttention(nn.Module):
    def __init__(self, hidden_size, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.q_proj = nn.Linear(hidden_size, hidden_size, bias=False)
        self.k_proj = nn.Linear(hidden_size, hidden_size, bias=False)
        self.v_proj = nn.Linear(hidden_size, hidden_size, bias=False)
        self.o_proj = nn.Linear(hidden_size, hidden_size, bias=False)

    def forward(self, hidden_states, mask=None):
        bsz, q_len, _ = hidden_states.size()
        query = self.q_proj(hidden_states).view(bsz, q_len, self.num_heads, self.head_dim).transpose(1, 2)
        key = self.k_proj(hidden_states).view(bsz, q_len, self.num_heads, self.head_dim).transpose(1, 2)
        value = self.v_proj(hidden_states).view(bsz, q_len, self.num_heads, self.head_dim).transpose(1, 2)
        scores = torch.matmul(query, key.transpose(2, 3)) / math.sqrt(self.head_dim)
        if mask is not None:
            scores = scores + mask
        probs = nn.functional.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
        out = torch.matmul(probs, value).transpose(1, 2).contiguous().reshape(bsz, q_len, -1)
        return self.o_proj(out)


class AcmeMLP(nn.Module):
    def __init__(self, hidden_size, intermediate_size):
        super().__init__()
        self.gate_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.up_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(nn.functional.silu(self.gate_proj(x)) * self.up_proj(x))
'''
COPIED_CODE = (
    UPSTREAM_CODE.replace("Acme", "Pruned")
    .replace("hidden_states", "h")
    .replace("variance", "var")
    .replace("query", "q")
    .replace("scores", "logits")
)


@dataclass
class World:
    reports: list[TargetReport]
    pruned_repo: Path
    pruned_weights_sha256: str


def build(tmp: Path) -> World:
    base = tiny_llm(11, layers=LAYERS)
    up = make_repo(tmp, "upstream", card={"license": "apache-2.0"}, weights={"model.safetensors": base})
    index = register(tmp / "index.sqlite", up, UPSTREAM, "apache-2.0")
    hostile_card = {
        "license": "apache-2.0",
        "base_model": f"evil/{HOSTILE}",
        "pipeline_tag": "text-generation",
        "datasets": [f"data/{HOSTILE}"],
        "model_name": f"Pruned {HOSTILE}",
        "library_name": "transformers",
    }
    CodeStore(index.db).add(UPSTREAM, {"modeling_acme.py": UPSTREAM_CODE}, "apache-2.0")
    pruned_repo = make_repo(
        tmp,
        "pruned",
        card=hostile_card,
        files={"modeling_pruned.py": COPIED_CODE},
        weights={"model.safetensors": noised(pruned(base, CUT_LAYER), 0.01)},
    )
    finetune = make_repo(
        tmp,
        "finetune",
        card={"license": "apache-2.0", "base_model": UPSTREAM, "base_model_relation": "finetune"},
        weights={"model.safetensors": noised(base, 0.05, seed=9)},
    )
    gone = TargetReport(
        "hf:gone/model",
        [Finding("source.unreachable", Severity.medium, "HTTP 503 after 3 tries")],
        error="HTTP 503 after 3 tries",
    )  # what a sweep records for a repo it cannot fetch
    reports = [scan(pruned_repo, index=index), scan(finetune, index=index), multi_hop_report(), gone]
    digest = hashlib.sha256((pruned_repo / "model.safetensors").read_bytes()).hexdigest()
    return World(reports, pruned_repo, digest)


CHAIN = {"someone/ft-of-ft": ["someone/ft"], "someone/ft": ["meta-llama/Meta-Llama-3-8B"]}


def multi_hop_report() -> TargetReport:
    """A model two unknown fine-tunes below Llama 3, known from the intermediate models' own cards."""
    card = CardFacts("README.md", {"license": "llama3", "base_model": "someone/ft-of-ft"})
    lineage = infer_lineage(
        LineageInput(
            name="me/multi-hop",
            card=card,
            fetch_card=lambda repo: CardFacts("README.md", {"base_model": CHAIN[repo]}) if repo in CHAIN else None,
        ),
        knowledge_base(),
    )
    facts = TargetFacts("me/multi-hop", "hf", card.metadata, lineage, released=MULTI_HOP_RELEASED)
    return TargetReport("hf:me/multi-hop", [], revision=MULTI_HOP_REVISION, facts=facts)


MULTI_HOP_RELEASED = "2025-04-01T12:00:00Z"  # as the Hub's lastModified would say
MULTI_HOP_REVISION = "4f2b9c1d8e7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c"
