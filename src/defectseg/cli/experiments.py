"""Run the pipeline as a named DVC experiment and read what it produced.

``dvc exp run --temp -n NAME -S key=value ...`` runs in a temporary copy of the
workspace and keeps the result as an experiment: ``dvc exp show`` lists it beside the
user's other experiments, ``dvc exp apply NAME`` brings its params, metrics and
DVC-cached models into the workspace, and ``dvc exp push`` shares it. Its git-tracked
outputs (metrics, report) are read back from the experiment's git ref.
"""

import json
import subprocess
import sys
from pathlib import Path

import yaml

from defectseg.config.params import apply_overrides, parse_params
from defectseg.errors import DefectsegError


def _override_value(value: object) -> str:
    """``value`` in the override grammar DVC reads (Hydra's): JSON scalars, unquoted mapping keys."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {_override_value(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_override_value(item) for item in value) + "]"
    return json.dumps(value)


def set_flags(overrides: dict) -> list[str]:
    """``-S ++key=value`` arguments: set the key, adding it where params.yaml has none (a model's own ``train`` recipe)."""
    flags = []
    for key, value in overrides.items():
        flags += ["-S", f"++{key}={_override_value(value)}"]
    return flags


def run_experiment(name: str, overrides: dict, repo: Path = Path(".")) -> str:
    """Validate ``overrides`` against the repository's params, run the experiment, return its git ref."""
    raw = yaml.safe_load((Path(repo) / "params.yaml").read_text())
    parse_params(apply_overrides(raw, dict(overrides)), "overrides")
    result = subprocess.run([sys.executable, "-m", "dvc", "exp", "run", "--temp", "-n", name, *set_flags(overrides)], cwd=repo)
    if result.returncode != 0:
        raise DefectsegError(f"{name}: `dvc exp run` failed (exit {result.returncode}); DVC's own error is above")
    return experiment_ref(name, repo)


def experiment_ref(name: str, repo: Path = Path(".")) -> str:
    """The git ref of the experiment called ``name``."""
    listing = subprocess.run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], cwd=repo, check=True, capture_output=True, text=True)
    refs = [ref for ref in listing.stdout.split() if ref.rsplit("/", 1)[-1] == name]
    if len(refs) != 1:
        raise DefectsegError(f"expected one DVC experiment named {name!r}, found {len(refs)}")
    return refs[0]


def files_in(ref: str, folder: str, repo: Path = Path(".")) -> list[str]:
    """Paths of the git-tracked files under ``folder`` in the commit ``ref``."""
    listing = subprocess.run(["git", "ls-tree", "-r", "--name-only", ref, folder], cwd=repo, check=True, capture_output=True, text=True)
    return listing.stdout.split()


def read_file(ref: str, path: str, repo: Path = Path(".")) -> bytes:
    """The bytes of ``path`` in the commit ``ref``."""
    return subprocess.run(["git", "show", f"{ref}:{path}"], cwd=repo, check=True, capture_output=True).stdout
