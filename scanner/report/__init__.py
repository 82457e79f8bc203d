"""Reports: findings rendered as text, JSON, Markdown, SARIF 2.1.0 or HTML (see render.py), and AI bills of
materials as CycloneDX 1.6 or SPDX 3.0.1 (see aibom.py); formats.py is the one registry of formats, ci.py the
Markdown CI posts (PR comment, step summaries, tracking issues)."""
