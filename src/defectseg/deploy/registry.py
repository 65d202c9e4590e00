"""A registered model fetched by name: ``NAME#STAGE`` (the version a stage holds now) or
``NAME@vX.Y.Z``, from a git repository (a path or URL) and its DVC remote.

GTO resolves the reference from the repository's git tags. For a stage it is GTO's own answer
(``find_versions_in_stage``): a version un-assigned from a stage (``gto deprecate NAME VERSION STAGE``) is no longer in
it, where ``dvc artifacts get --stage`` takes the newest tag naming the stage, the un-assignment
included (DVC 3.67 ``Artifacts.get_rev``). DVC then fetches that version's folder
(``dvc artifacts get``), once per commit: later calls reuse the copy in the project's cache
(``foundation.cache``: ``~/.cache/defectseg/artifacts/``).
"""

import re
from dataclasses import dataclass
from pathlib import Path

from defectseg.errors import DefectsegError
from defectseg.foundation.atomic import atomic_dir
from defectseg.foundation.cache import cache_root

REFERENCE = re.compile(r"^(?P<name>[a-z0-9][a-z0-9_-]*)(?:#(?P<stage>[A-Za-z0-9_-]+)|@(?P<version>v\d+\.\d+\.\d+))$")



@dataclass(frozen=True)
class Entry:
    """A resolved registry entry: the artifact, its version, the stage asked for (if any) and the version's commit."""

    name: str
    version: str
    stage: str | None
    commit: str

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}" + (f" (#{self.stage})" if self.stage else "")


def resolve(repo: str, reference: str) -> Entry:
    """The version ``reference`` names in the registry of ``repo``; a one-line error when it names none."""
    match = REFERENCE.match(reference)
    if not match:
        raise DefectsegError(f"--artifact {reference}: expected NAME#STAGE (e.g. defect-segmenter#prod) or NAME@vX.Y.Z")
    from gto.api import find_versions_in_stage, show

    name, stage, version = match["name"], match["stage"], match["version"]
    try:
        if stage:
            found = find_versions_in_stage(repo, name, stage)
            if not found:
                raise DefectsegError(f"{repo}: no version of {name} is in stage {stage} (gto show {name})")
            return Entry(name, found[0].version, stage, found[0].commit_hexsha)
        versions = {entry["version"]: entry for entry in show(repo, name) if entry["is_active"]}
    except DefectsegError:
        raise
    except Exception as exc:  # GTO's errors (not a git repository, unknown artifact) have no common base
        raise DefectsegError(f"{repo}: cannot read its registry ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if version not in versions:
        raise DefectsegError(f"{repo}: {name} has no registered version {version} (registered: {', '.join(sorted(versions)) or 'none'})")
    return Entry(name, version, None, versions[version]["commit_hexsha"])


def fetch(repo: str, entry: Entry, cache_dir: Path | None = None) -> Path:
    """The folder of ``entry``, fetched with ``dvc artifacts get`` into ``cache_dir/NAME/COMMIT`` (whole or not at all)."""
    folder = Path(cache_dir or cache_root() / "artifacts") / entry.name / entry.commit
    if folder.is_dir():
        return folder
    from dvc.repo.artifacts import Artifacts

    with atomic_dir(folder) as scratch:
        try:
            Artifacts.get(str(repo), entry.name, version=entry.version, out=str(scratch / "model"), force=True)
        except Exception as exc:  # DVC wraps remote and checkout failures in several types
            cause = exc.__cause__ or exc
            raise DefectsegError(f"{repo}: cannot fetch {entry.label} ({str(cause).splitlines()[0] if str(cause) else type(cause).__name__})") from None
        for path in (scratch / "model").iterdir():
            path.rename(scratch / path.name)
        (scratch / "model").rmdir()
    return folder


def fetch_model(repo: str, reference: str, cache_dir: Path | None = None) -> tuple[Path, Entry]:
    """``resolve`` then ``fetch``: the model folder and the entry it is."""
    entry = resolve(repo, reference)
    return fetch(repo, entry, cache_dir), entry
