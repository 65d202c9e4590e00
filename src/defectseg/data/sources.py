"""Turn ``data.source`` into a local folder: a folder as is, a .zip safely extracted,
``mtd`` downloaded from its URL, checked and extracted. Downloads and extractions are
cached under ``data/cache/`` (git-ignored) so a re-run does not fetch again.
"""

import hashlib
import stat
import sys
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from defectseg.config.data import MtdParams
from defectseg.errors import DataError
from defectseg.foundation.atomic import atomic_dir, atomic_file

CHUNK = 1 << 20


def sha256_of(path: Path) -> str:
    """The hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _check_entry(zip_path: Path, info: zipfile.ZipInfo) -> None:
    name = info.filename
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or (len(name) > 1 and name[1] == ":"):
        raise DataError(zip_path, f"zip entry {name!r} has an absolute path; refusing to extract")
    if ".." in posix.parts:
        raise DataError(zip_path, f"zip entry {name!r} would escape the target folder ('..'); refusing to extract")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise DataError(zip_path, f"zip entry {name!r} is a symbolic link; refusing to extract")


def extract_zip(zip_path: Path, cache_dir: Path) -> Path:
    """Extract ``zip_path`` into the cache, after checking every entry, and return the folder."""
    zip_path = Path(zip_path)
    target = Path(cache_dir) / "extracted" / sha256_of(zip_path)[:16]
    if target.is_dir():
        return target
    try:
        with zipfile.ZipFile(zip_path) as archive:
            infos = archive.infolist()
            for info in infos:
                _check_entry(zip_path, info)
            if not infos:
                raise DataError(zip_path, "zip file is empty")
            with atomic_dir(target) as tmp:
                archive.extractall(tmp)
    except zipfile.BadZipFile as exc:
        raise DataError(zip_path, f"not a valid zip file ({exc})") from None
    return target


def download(url: str, dest: Path, sha256: str) -> str:
    """Download ``url`` to ``dest`` atomically and return its SHA-256.

    With ``sha256`` set, a mismatch is an error and nothing is kept.
    """
    digest = hashlib.sha256()
    try:
        with atomic_file(dest) as tmp, urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
            while chunk := response.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            if sha256 and digest.hexdigest() != sha256:
                raise DataError(url, f"SHA-256 mismatch: expected {sha256}, got {digest.hexdigest()}")
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        raise DataError(url, f"download failed: {exc}") from None
    return digest.hexdigest()


def fetch_mtd(mtd: MtdParams, cache_dir: Path) -> Path:
    """Download (once) and extract the Magnetic Tile archive; return the extracted folder."""
    archive = Path(cache_dir) / "downloads" / (hashlib.sha256(mtd.url.encode()).hexdigest()[:16] + ".zip")
    if archive.exists():
        actual = sha256_of(archive)
        if mtd.sha256 and actual != mtd.sha256:
            archive.unlink()
    if not archive.exists():
        print(f"downloading {mtd.url}", file=sys.stderr)
        actual = download(mtd.url, archive, mtd.sha256)
    if not mtd.sha256:
        print(
            f"warning: data.mtd.sha256 is empty, so {mtd.url} was not checked; "
            f"its SHA-256 is {actual} (set it in params.yaml to pin it)",
            file=sys.stderr,
        )
    return extract_zip(archive, cache_dir)


def resolve_source(source: str, mtd: MtdParams, cache_dir: Path) -> Path:
    """The local folder that holds the data named by ``source`` (not ``synthetic``)."""
    if source == "mtd":
        return fetch_mtd(mtd, cache_dir)
    path = Path(source)
    if not path.exists() and not path.is_symlink():
        raise DataError(path, "source path does not exist")
    if path.is_file() and path.suffix.lower() == ".zip":
        return extract_zip(path, cache_dir)
    return path

