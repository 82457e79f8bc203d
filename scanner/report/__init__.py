"""Reports: findings rendered as text, JSON, Markdown, SARIF 2.1.0 or HTML (see render.py)."""
