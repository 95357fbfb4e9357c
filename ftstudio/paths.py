"""Where FT Studio keeps things: the bundled resources and the user's cache."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# An installed wheel carries them inside the package (setup.py); a checkout keeps them beside it.
RESOURCES_DIR = (
    PACKAGE_DIR / "resources" if (PACKAGE_DIR / "resources").is_dir() else PACKAGE_DIR.parent / "resources"
)


def cache_dir() -> Path:
    """The user's cache folder for FT Studio (``FTSTUDIO_CACHE_DIR`` overrides it)."""
    override = os.environ.get("FTSTUDIO_CACHE_DIR")
    if override:
        return Path(override)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("ftstudio", appauthor=False))


def resource(*parts: str) -> Path:
    return RESOURCES_DIR.joinpath(*parts)
