"""Local stand-ins for the Hugging Face Hub and the GitHub API, for tests and benchmarks (127.0.0.1 only)."""
