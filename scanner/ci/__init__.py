"""Where originscan meets CI: pull-request mode for GitHub Actions, nightly organisation sweeps and their history.

- `github.py`  — `run_pull_request`: changed model folders, new-vs-existing findings, one PR comment, step summary,
                 annotations, SARIF and step outputs.
- `sweep.py`   — `sweep`: every repo of one or more orgs, sharded, in parallel; `nightly_issue`: one tracking issue.
- `history.py` — the SQLite run history (`record_run`, `diff_last`), finding keys, and `merge_reports` for shards.
"""
