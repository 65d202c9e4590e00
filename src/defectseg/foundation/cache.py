"""Where the project keeps what it can rebuild or fetch again: ``$DEFECTSEG_CACHE``, else
``$XDG_CACHE_HOME/defectseg``, else ``~/.cache/defectseg`` (registry versions, exported graphs)."""

import os
from pathlib import Path


def cache_root() -> Path:
    if os.environ.get("DEFECTSEG_CACHE"):
        return Path(os.environ["DEFECTSEG_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "defectseg"
