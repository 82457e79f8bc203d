"""Owner canaries: prompts a model owner registers with their model's characteristic answers, right and wrong.

In the Llama3-V affair the decisive evidence was a private skill (reading unpublished bamboo-slip characters) that
the copy had too, with the same mistakes. An owner who trained such a skill into their model registers a few
dozen of its prompts and the model's own greedy answers: `originscan index add MODEL --canaries FILE`. The file
is JSON:

    {"canaries": [{"prompt": "...", "answer": "...", "correct": false, "right_answer": "..."}, ...]}

`correct` (optional) says whether the model's answer is the right one; wrong answers are the strongest evidence
(nobody learns the same mistake by chance), and both kinds are tested the same way. `right_answer` (optional, only
beside `"correct": false`) is what the model should have answered: the owner knows it (that is how they marked the
answer wrong), and with it `probe` weighs how strongly a suspect prefers the model's mistake to the right answer,
which a derivative that kept the skill only partly still does when its greedy answer no longer repeats the mistake
(behaviour.canary_likelihood_test).

The canaries live in the fingerprint index beside the model's fingerprint, in their own table (created when
missing, so an index written by an older originscan gains it on first use and older versions ignore it).
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scanner.errors import UsageError

MAX_CANARIES = 1000
MAX_TEXT = 4000  # characters per prompt or answer: a canary is a short probe, not a document

SCHEMA = """
CREATE TABLE IF NOT EXISTS canaries (
  name TEXT PRIMARY KEY, data TEXT NOT NULL, added TEXT
);
"""


@dataclass(frozen=True)
class Canary:
    prompt: str
    answer: str
    correct: bool | None = None
    right_answer: str | None = None  # the right answer, for an answer marked wrong

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"prompt": self.prompt, "answer": self.answer}
        if self.correct is not None:
            out["correct"] = self.correct
        if self.right_answer is not None:
            out["right_answer"] = self.right_answer
        return out


def parse_canaries(data: Any, where: str) -> list[Canary]:
    """The canaries of a decoded canary file; a UsageError naming `where` and the first problem otherwise."""
    items = data.get("canaries") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise UsageError(f'{where}: expected {{"canaries": [{{"prompt": ..., "answer": ...}}, ...]}}')
    if len(items) > MAX_CANARIES:
        raise UsageError(f"{where}: {len(items)} canaries; at most {MAX_CANARIES}")
    out: list[Canary] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise UsageError(f"{where}: canary {i} is not an object")
        prompt, answer, correct = item.get("prompt"), item.get("answer"), item.get("correct")
        if not isinstance(prompt, str) or not prompt.strip() or len(prompt) > MAX_TEXT:
            raise UsageError(f"{where}: canary {i} needs a non-empty prompt of at most {MAX_TEXT} characters")
        if not isinstance(answer, str) or not answer.strip() or len(answer) > MAX_TEXT:
            raise UsageError(f"{where}: canary {i} needs a non-empty answer of at most {MAX_TEXT} characters")
        if correct is not None and not isinstance(correct, bool):
            raise UsageError(f"{where}: canary {i}: correct must be true or false")
        right = item.get("right_answer")
        if right is not None:
            if correct is not False:
                raise UsageError(f'{where}: canary {i}: right_answer goes only with "correct": false')
            if not isinstance(right, str) or not right.strip() or len(right) > MAX_TEXT:
                raise UsageError(f"{where}: canary {i}: right_answer must be a non-empty string of at most {MAX_TEXT}")
            if right.strip() == answer.strip():
                raise UsageError(f"{where}: canary {i}: right_answer is the answer marked wrong")
        out.append(Canary(prompt, answer, correct, right))
    return out


def read_canary_file(path: Path) -> list[Canary]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read canary file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: not JSON ({exc.msg}, line {exc.lineno})") from None
    return parse_canaries(data, str(path))


class CanaryStore:
    """The canaries registered per model name, in the index's SQLite database."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db
        self.db.executescript(SCHEMA)

    def put(self, name: str, canaries: list[Canary]) -> None:
        data = json.dumps({"canaries": [c.to_json() for c in canaries]})
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO canaries(name, data, added) VALUES (?,?,?)",
                (name, data, dt.datetime.now(dt.UTC).isoformat(timespec="seconds")),
            )

    def get(self, name: str) -> list[Canary]:
        row = self.db.execute("SELECT data FROM canaries WHERE name=?", (name,)).fetchone()
        if row is None:
            return []
        return parse_canaries(json.loads(row[0]), f"index canaries of {name}")

    def names(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT name FROM canaries ORDER BY name")]
