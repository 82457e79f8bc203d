"""A local Hub populated with look-alikes of the knowledge base's upstreams, for `index update` tests.

Each look-alike is a tiny Llama-shaped model (its own seed) under the upstream's real Hub id. Every fourth is
gated (readable only with the test token); most gated ones have an ungated mirror with byte-identical weight
files listed under `mirrors`, one has a mirror whose bytes differ, some have none; one upstream is private
(its metadata invisible) with a mirror. Shapes vary (hidden 48 or 64,
vocabulary 320 or 512) so header facts have something to rule out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml
from helpers import card_text, save_tensors, tiny_llm
from servers.hub import make_repo as make_hub_repo

from scanner.knowledge import knowledge_base

SHAPES = [(48, 320), (64, 512), (48, 512), (64, 320)]


@dataclass
class Lookalike:
    id: str
    family: str
    license: str
    seed: int
    hidden: int
    vocab: int
    gated: bool = False
    private: bool = False  # not even its metadata is visible: only an (unverifiable) mirror can stand in
    mirrors: list[str] = field(default_factory=list)
    bad_mirror: str | None = None  # listed, but its bytes differ

    def weights(self):
        return tiny_llm(self.seed, vocab=self.vocab, d=self.hidden, inter=2 * self.hidden)


def build_world(hub_root: Path, tmp: Path, count: int = 32) -> tuple[list[Lookalike], Path]:
    """Write `count` look-alikes (and mirrors) under `hub_root`; returns them and the upstream list file."""
    ups = sorted(knowledge_base().upstreams.values(), key=lambda u: u.id.lower())[:count]
    assert len(ups) >= min(count, 30), "the knowledge base lists fewer upstreams than the test needs"
    world = []
    for i, up in enumerate(ups):
        hidden, vocab = SHAPES[i % len(SHAPES)]
        la = Lookalike(up.id, up.family, up.license, seed=100 + i, hidden=hidden, vocab=vocab, gated=i % 4 == 1)
        if la.gated and i % 8 == 1:
            la.mirrors = [f"mirror-org/{up.id.split('/')[1]}"]
        elif i == 3:
            la.private = True
            la.mirrors = [f"mirror-org/{up.id.split('/')[1]}"]
        elif la.gated and i == 5:
            la.bad_mirror = f"bad-mirror/{up.id.split('/')[1]}"
            la.mirrors = [la.bad_mirror]
        world.append(la)
        _publish(hub_root, tmp, la)
    entries = [
        {"id": la.id, "family": la.family, "license": la.license, **({"mirrors": la.mirrors} if la.mirrors else {})}
        for la in world
    ]
    listing = tmp / "upstreams.yaml"
    listing.write_text(yaml.safe_dump({"upstreams": entries}, sort_keys=False), encoding="utf-8")
    return world, listing


def _publish(hub_root: Path, tmp: Path, la: Lookalike) -> None:
    st = save_tensors(la.weights(), tmp / "st" / la.id / "model.safetensors").read_bytes()
    card = card_text({"license": la.license}, f"# {la.id.split('/')[1]}\n")
    cfg = {"gated": "manual"} if la.gated else {"private": True} if la.private else {}
    make_hub_repo(hub_root, la.id, {"README.md": card, "model.safetensors": st}, **cfg)
    for m in la.mirrors:
        data = st
        if m == la.bad_mirror:  # same shapes, other bytes: must not be taken for the official weights
            from helpers import noised

            data = save_tensors(noised(la.weights(), 0.01), tmp / "st" / m / "model.safetensors").read_bytes()
        make_hub_repo(hub_root, m, {"README.md": card, "model.safetensors": data})
