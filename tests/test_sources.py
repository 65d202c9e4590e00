"""Zip sources and the MTD download, against real zips and a real HTTP server on 127.0.0.1."""

import functools
import hashlib
import http.server
import threading
import zipfile
from pathlib import Path

import pytest

from conftest import make_plain, params_with
from defectseg.data.prepare import prepare_dataset
from defectseg.data.sources import extract_zip, fetch_mtd
from defectseg.errors import DataError


def zip_folder(folder: Path, zip_path: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(zip_path, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, prefix + str(path.relative_to(folder)))
    return zip_path


@pytest.fixture
def plain_zip(tmp_path) -> Path:
    return zip_folder(make_plain(tmp_path / "plain", n=8), tmp_path / "plain.zip", prefix="dataset-main/")


def test_zip_source_is_extracted_and_prepared(tmp_path, plain_zip):
    params = params_with(**{"data.source": str(plain_zip)})
    summary = prepare_dataset(params.data, 1, tmp_path / "out", tmp_path / "cache")
    assert summary["pairs"] == 8 and summary["layout"] == "plain"


@pytest.mark.parametrize(("entry", "problem"), [("../evil.png", "escape"), ("/etc/evil.png", "absolute path")])
def test_zip_with_escaping_entry_is_refused_before_extracting(tmp_path, plain_zip, entry, problem):
    with zipfile.ZipFile(plain_zip, "a") as archive:
        archive.writestr(entry, b"x")
    with pytest.raises(DataError, match=f"plain.zip: zip entry .* {problem}"):
        extract_zip(plain_zip, tmp_path / "cache")
    assert not (tmp_path / "evil.png").exists()
    assert not (tmp_path / "cache" / "extracted").exists() or not any((tmp_path / "cache" / "extracted").iterdir())


def test_file_that_is_not_a_zip_is_refused(tmp_path):
    fake = tmp_path / "data.zip"
    fake.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="data.zip: not a valid zip file"):
        extract_zip(fake, tmp_path / "cache")


@pytest.fixture
def http_root(tmp_path):
    """A real HTTP server on 127.0.0.1 serving files from a folder; yields (folder, base URL)."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_mtd_download_checks_sha256_and_caches(tmp_path, plain_zip, http_root):
    served, base = http_root
    (served / "master.zip").write_bytes(plain_zip.read_bytes())
    digest = hashlib.sha256(plain_zip.read_bytes()).hexdigest()
    params = params_with(**{"data.source": "mtd", "data.mtd.url": f"{base}/master.zip", "data.mtd.sha256": digest})
    folder = fetch_mtd(params.data.mtd, tmp_path / "cache")
    assert (folder / "dataset-main" / "images" / "img0.png").is_file()
    (served / "master.zip").unlink()
    assert fetch_mtd(params.data.mtd, tmp_path / "cache") == folder, "second call must use the cache"


def test_mtd_download_with_wrong_sha256_keeps_nothing(tmp_path, plain_zip, http_root):
    served, base = http_root
    (served / "master.zip").write_bytes(plain_zip.read_bytes())
    params = params_with(**{"data.mtd.url": f"{base}/master.zip", "data.mtd.sha256": "0" * 64})
    with pytest.raises(DataError, match="SHA-256 mismatch"):
        fetch_mtd(params.data.mtd, tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob("*.zip"))


def test_mtd_download_failure_names_the_url(tmp_path, http_root):
    _, base = http_root
    params = params_with(**{"data.mtd.url": f"{base}/missing.zip"})
    with pytest.raises(DataError, match=r"missing.zip: download failed"):
        fetch_mtd(params.data.mtd, tmp_path / "cache")
