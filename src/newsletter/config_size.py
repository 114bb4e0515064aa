"""How big a newsletter.yml may be, checked before the file is read, let alone parsed.

Apart from the YAML loader, so that a command whose config is kept in the build's cache
(``config_cache``) checks the size without loading the YAML parser it does not need.
"""

from __future__ import annotations

from .errors import ConfigError

MAX_CONFIG_BYTES = 2 * 1024 * 1024
"""Far above any real newsletter.yml (the bundled one is 4 KB), far below what slows a run."""


def check_size(size: int, shown: str) -> None:
    """Refuse a file too big to be a config, before it is read or parsed."""
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(
            [
                f"{shown}: the file is {size / 1024 / 1024:.1f} MB, over the "
                f"{MAX_CONFIG_BYTES // 1024 // 1024} MB limit for a config; keep content and "
                "subscribers out of it (sources and the store hold them)"
            ],
            path=shown,
        )
