"""Checks: small pure functions over a scan's evidence that yield findings. One module per rule family."""
