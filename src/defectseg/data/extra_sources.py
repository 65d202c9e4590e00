"""More folders whose pairs join the data set beside ``data.source``: ``data/extra-sources.txt``.

One absolute folder path a line (``#`` starts a comment), each folder in any layout; the
inspectors' review folders are added by ``defectseg review add``. A tracked data file rather
than a param: it declares data, like a ``.dvc`` file, and keeps the params schema (which every
stage reads) unchanged. The always-run ``source`` stage fingerprints each listed folder into
``data/source.json``, so adding a folder or changing one of its pairs re-runs ``prepare``.
"""

from pathlib import Path

from defectseg.errors import DataError
from defectseg.foundation.atomic import write_text

EXTRA_SOURCES = Path("data/extra-sources.txt")
HEADER = "# Folders whose pairs join the data set beside data.source, one absolute path a line (docs/review.md).\n"


def read_extra_sources(path: Path = EXTRA_SOURCES) -> list[Path]:
    """The folders listed in ``path`` (none where the file is absent); a listed folder that is gone is an error naming it."""
    path = Path(path)
    if not path.is_file():
        return []
    folders = [Path(line.strip()) for line in path.read_text().splitlines() if line.strip() and not line.lstrip().startswith("#")]
    for folder in folders:
        if not folder.is_dir():
            raise DataError(folder, f"listed in {path} as a source folder, but it does not exist")
    return folders


def add_extra_source(folder: Path, path: Path = EXTRA_SOURCES) -> bool:
    """List ``folder`` (by its absolute path) in ``path``; False where it is listed already."""
    folder, path = Path(folder).resolve(), Path(path)
    text = path.read_text() if path.is_file() else HEADER
    if folder in read_extra_sources(path):
        return False
    write_text(path, text + ("" if text.endswith("\n") else "\n") + f"{folder}\n")
    return True
