"""The one sanitiser for repo-controlled text on its way to terminals, CI logs and reports."""

from __future__ import annotations

import json

from scanner.report.sanitize import ZWSP, json_ready, terminal_safe, visible


def test_plain_text_is_untouched():
    for s in ("llama3.1", "Built with Meta Llama 3", "naïve – ünïcode 日本語", "a\tb"):
        assert terminal_safe(s) == s and visible(s) == s


def test_escape_sequences_and_controls_are_made_visible():
    s = terminal_safe("\x1b[31mred\x1b]0;title\x07\x1b]8;;https://e\x1b\\x\x9b2J\r\x00\u202e")
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c == "\u202e" for c in s)
    assert "\\x1b[31m" in s and "\\x9b" in s and "\\u202e" in s


def test_workflow_commands_cannot_start_a_line():
    s = terminal_safe("x\n::error title=a::b\n##[warning]c ::add-mask::d")
    assert "\n" not in s and "::" not in s and "##[" not in s
    assert f":{ZWSP}:error" in s and f"#{ZWSP}#[" in s
    multi = terminal_safe("notice\n::stop-commands::tok", multiline=True)
    assert multi.split("\n") == ["notice", f":{ZWSP}:stop-commands:{ZWSP}:tok"]


def test_lone_surrogates_are_replaced():
    assert terminal_safe("a\ud800b") == "a\ufffdb"
    assert visible("\udc80") == "\ufffd"
    assert terminal_safe("a\ud800b").encode("utf-8")


def test_json_ready_is_strict_json():
    doc = json_ready({"k\udfff": ["\ud800", float("nan"), float("inf"), 1.5, 2, None, True]})
    text = json.dumps(doc)
    assert "NaN" not in text and "Infinity" not in text and "\\ud" not in text
    assert json.loads(text) == {"k\ufffd": ["\ufffd", None, None, 1.5, 2, None, True]}
