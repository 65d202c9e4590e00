"""``defectseg ship``: put a comparison's recommended model into ``release/``, ready to serve.

``defectseg compare`` (``make mtd*``) runs its comparison as a DVC experiment and leaves the
workspace alone, so its winner is not in ``release/``. This applies the experiment (the last
one ``compare`` ran, or ``--experiment NAME``) to the workspace with ``dvc exp apply``: its
params, ``dvc.lock`` and outputs, the trained models included, come out of the DVC cache. Then
``dvc repro ship`` brings the ship stage up to this checkout's code (nothing upstream re-runs:
their outputs match the lock), so ``release/`` holds what ``deploy.ship`` ships of the
recommended arm: with folds, the ensemble of its fold models. ``git diff`` then shows the
experiment's params; ``git checkout . && dvc checkout`` goes back.
"""

import subprocess
import sys
from pathlib import Path

from defectseg.errors import DefectsegError

LAST_COMPARISON = Path(".dvc/tmp/last-comparison")


def remember(experiment: str, repo: Path = Path(".")) -> None:
    """Record ``experiment`` as the last comparison run here (DVC's tmp folder: never committed)."""
    path = Path(repo) / LAST_COMPARISON
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(experiment + "\n")


def last_comparison(repo: Path = Path(".")) -> str:
    """The experiment ``compare`` ran last in ``repo``."""
    path = Path(repo) / LAST_COMPARISON
    if not path.is_file():
        raise DefectsegError(f"{path}: no comparison has run in this checkout: run `make mtd` (or `defectseg compare`) first, or name one with --experiment")
    return path.read_text().strip()


def ship_comparison(experiment: str | None, repo: Path = Path(".")) -> str:
    """Apply ``experiment`` (default: the last comparison) and reproduce its ship stage; return its name."""
    name = experiment or last_comparison(repo)
    for command in (["exp", "apply", name], ["repro", "ship"]):
        result = subprocess.run([sys.executable, "-m", "dvc", *command], cwd=repo)
        if result.returncode != 0:
            raise DefectsegError(f"{name}: `dvc {' '.join(command)}` failed (exit {result.returncode}); DVC's own error is above")
    return name
