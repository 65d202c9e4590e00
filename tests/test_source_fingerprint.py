"""The source fingerprint changes with every change to the pairs, and only then."""

import zipfile

import numpy as np
import pytest

from conftest import make_plain, params_with, square_mask, write_png
from defectseg.data.source_fingerprint import fingerprint, record_source
from defectseg.errors import DataError


def of(source) -> dict:
    return fingerprint(params_with(**{"data.source": str(source)}).data)


def test_folder_fingerprint_changes_on_relabel_add_and_remove_and_not_otherwise(tmp_path):
    source = make_plain(tmp_path / "tiles", n=4)
    first = of(source)
    assert first == of(source) and first["kind"] == "folder" and first["files"] == 8
    relabelled = square_mask()
    relabelled[0, 0] = 255
    write_png(source / "masks" / "img1.png", relabelled)
    seen = {first["sha256"], of(source)["sha256"]}
    write_png(source / "images" / "img9.png", np.zeros((48, 48), np.uint8))
    write_png(source / "masks" / "img9.png", np.zeros((48, 48), np.uint8))
    seen.add(of(source)["sha256"])
    (source / "images" / "img0.png").unlink()
    (source / "masks" / "img0.png").unlink()
    seen.add(of(source)["sha256"])
    assert len(seen) == 4


def test_zip_fingerprint_changes_when_a_pair_is_replaced(tmp_path):
    source = make_plain(tmp_path / "tiles", n=4)

    def zipped(name: str):
        path = tmp_path / name
        with zipfile.ZipFile(path, "w") as archive:
            for file in sorted(source.rglob("*.png")):
                archive.write(file, file.relative_to(source).as_posix())
        return path

    first = of(zipped("a.zip"))
    assert first["kind"] == "zip" and first == of(zipped("b.zip"))
    write_png(source / "images" / "img2.png", np.full((48, 48), 7, np.uint8))
    assert of(zipped("c.zip"))["sha256"] != first["sha256"]


def test_absent_source_keeps_the_previous_fingerprint_and_is_an_error_without_one(tmp_path):
    source = make_plain(tmp_path / "tiles", n=4)
    params = params_with(**{"data.source": str(source)}).data
    out = tmp_path / "source.json"
    record_source(params, out)
    recorded = out.read_bytes()
    source.rename(tmp_path / "away")
    assert record_source(params, out).startswith(f"notice: {source}: not found")
    assert out.read_bytes() == recorded
    out.unlink()
    with pytest.raises(DataError, match="source path does not exist"):
        record_source(params, out)


def test_synthetic_fingerprint_names_no_path(tmp_path):
    assert fingerprint(params_with().data) == {"kind": "synthetic"}
