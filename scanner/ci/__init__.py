"""Where originscan meets CI: thin consumers of the typed core (findings, report, sources).

- `actions.py`      — the GitHub Actions surface: workflow commands, the run URL, step summary/output files.
- `github.py`       — `run_pull_request(PullRequestOptions)`: changed model folders, new-vs-existing findings
                      (`Finding.key`), one PR comment, step summary, annotations, SARIF and step outputs, as named
                      steps (read_inputs, plan_checkout, scan_plan, write_reports, post_comment, finish).
- `sweep.py`        — `sweep`: every repo of one or more orgs, sharded, in parallel; `nightly_issue`: one tracking issue.
- `history.py`      — the SQLite run history (`record_run`, `diff_last` → `RunDiff`) and `merge_reports` for shards.
- `watch_issues.py` — one tracking issue per undeclared `originscan watch` suspect.

Every Markdown body is rendered by scanner/report/ci.py through templates/*.md.j2; every REST call goes through
scanner.sources.github.GitHubAPI.
"""
