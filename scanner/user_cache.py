"""Where originscan caches: `$ORIGINSCAN_CACHE`, else the platform's user cache folder; nowhere with
`ORIGINSCAN_CACHE=off`. A leaf module, so that the knowledge base (below scanner/sources) can cache too."""

from __future__ import annotations

import os
from pathlib import Path

ENV = "ORIGINSCAN_CACHE"
OFF_VALUES = {"off", "0", "no", "false", "none"}


def platform_cache_dir() -> Path:
    import platformdirs  # not for a command that names its cache

    return Path(platformdirs.user_cache_dir("originscan", appauthor=False))


def cache_root() -> Path | None:
    """The cache folder, or None when caching is off."""
    env = os.environ.get(ENV)
    if env is not None and env.strip().lower() in OFF_VALUES:
        return None
    return Path(env).expanduser() if env else platform_cache_dir()


__all__ = ["ENV", "OFF_VALUES", "cache_root", "platform_cache_dir"]
