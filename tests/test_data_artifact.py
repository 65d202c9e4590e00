"""The data set as a DVC artifact, in a real git + DVC repository with a local remote.

A folder source is prepared into ``data/prepared`` (pairs at their own size, relative paths),
pushed, and a clone elsewhere with the source folder moved away reproduces every stage from
``dvc pull`` alone; a relabelled mask in the source re-runs prepare and what depends on it.
"""

import hashlib
import io
import json
import re
import subprocess

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from conftest import SOURCE, TINY_PIPELINE, DvcRepo, gray, make_plain, square_mask, write_png
from defectseg.data.reviews import Review, ReviewStore, image_id

DOWNSTREAM = {"prepare", "preprocess", "train@unet-dice-0-0", "evaluate@unet-dice-0-0", "report", "ship"}


def ran(result) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", result.stdout))


@pytest.fixture(scope="module")
def origin(tmp_path_factory):
    """A folder-source pipeline, reproduced, committed and pushed to a local remote."""
    source = make_plain(tmp_path_factory.mktemp("tiles") / "tiles", n=12)
    repo = DvcRepo(tmp_path_factory.mktemp("origin"))
    repo.set_params(**TINY_PIPELINE, **{"compare.losses": ["dice"], "data.source": str(source)})
    repo.run("dvc", "remote", "add", "--default", "team", str(tmp_path_factory.mktemp("store")))
    repo.commit("folder source")
    repo.run("dvc", "repro")
    repo.commit("reproduced")
    repo.run("dvc", "push")
    return repo, source


def test_no_tracked_file_names_the_source_or_the_checkout(origin):
    """Only the params themselves (params.yaml, and their values recorded in the lock files) name the source."""
    repo, source = origin
    tracked = repo.run("git", "ls-files").stdout.split() + ["data/prepared/manifest.csv", "data/prepared/summary.json"]
    assert "data/source.json" in tracked
    for name in tracked:
        text = (repo.root / name).read_text(errors="ignore")
        if name not in ("params.yaml", "dvc.lock", "data/dvc.lock"):
            assert str(source) not in text and str(repo.root) not in text, name
    locks = [yaml.safe_load((repo.root / name).read_text()) for name in ("dvc.lock", "data/dvc.lock")]
    paths = [entry["path"] for lock in locks for stage in lock["stages"].values() for key in ("deps", "outs") for entry in stage.get(key, [])]
    assert paths and not [path for path in paths if path.startswith("/") or ".." in path]


def test_clone_without_the_source_reproduces_every_stage_from_the_remote(origin, tmp_path):
    repo, source = origin
    clone = tmp_path / "teammate"
    subprocess.run(["git", "clone", "-q", str(repo.root), str(clone)], check=True)
    teammate = DvcRepo(clone, create=False)
    hidden = source.with_name("tiles-moved-away")
    source.rename(hidden)
    try:
        teammate.run("dvc", "pull")
        result = teammate.run("dvc", "repro")
        assert ran(result) == {SOURCE}, result.stdout
        notices = [line for line in (result.stdout + result.stderr).splitlines() if str(source) in line]
        assert len(notices) == 1 and notices[0].startswith("notice: ") and "Traceback" not in result.stderr
        metrics = "metrics/runs/unet-dice-seed0-fold0.json"
        forced = teammate.run("dvc", "repro", "-f", "-s", "evaluate@unet-dice-0-0")
        assert ran(forced) == {"evaluate@unet-dice-0-0"}
        assert (clone / metrics).read_bytes() == (repo.root / metrics).read_bytes()
        assert ran(teammate.run("dvc", "repro", "-f", "-s", "preprocess")) == {"preprocess"}
        shards = sorted(p.relative_to(repo.root) for p in (repo.root / "data" / "preprocessed").iterdir())
        assert shards == sorted(p.relative_to(clone) for p in (clone / "data" / "preprocessed").iterdir())
        assert all((clone / shard).read_bytes() == (repo.root / shard).read_bytes() for shard in shards)
    finally:
        hidden.rename(source)


def test_relabelled_mask_re_runs_prepare_and_what_depends_on_it_and_nothing_else(origin):
    repo, source = origin
    assert ran(repo.run("dvc", "repro")) == {SOURCE}
    assert "prepare" not in repo.run("dvc", "status").stdout
    before = json.loads((repo.root / "data" / "source.json").read_text())
    relabelled = square_mask()
    relabelled[30:40, 30:40] = 255
    write_png(source / "masks" / "img3.png", relabelled)
    assert ran(repo.run("dvc", "repro", "-s", SOURCE)) == {SOURCE}
    status = repo.run("dvc", "status").stdout
    assert re.search(r"^prepare:\n\s+changed deps:\n\s+modified:\s+data/source.json", status, re.MULTILINE), status
    assert json.loads((repo.root / "data" / "source.json").read_text())["sha256"] != before["sha256"]
    assert ran(repo.run("dvc", "repro")) == {SOURCE} | DOWNSTREAM
    copied = np.asarray(Image.open(repo.root / "data" / "prepared" / "masks" / "img3.png"))
    assert (copied[30:40, 30:40] == 255).all()
    assert ran(repo.run("dvc", "repro")) == {SOURCE}


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def file_hashes(folder) -> dict[str, str]:
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def test_a_review_folder_added_joins_the_data_set_and_a_relabel_changes_only_its_shard(origin, tmp_path):
    repo, _ = origin
    store = ReviewStore(tmp_path / "inbox")
    images = [png_bytes(gray(48, 48, seed=500 + i)) for i in range(3)]
    for i, image in enumerate(images):
        store.save(Review(image, ".png", square_mask() > 0, "correct", f"part{i}.png", "line-a" if i < 2 else None), np.zeros((48, 48), bool), "unet-dice", "v1")
    repo.run("defectseg", "review", "add", str(tmp_path / "inbox"))
    assert {"prepare", "train@unet-dice-0-0"} <= ran(repo.run("dvc", "repro"))
    manifest = pd.read_csv(repo.root / "data" / "prepared" / "manifest.csv").set_index("id")
    reviewed = [image_id(image) for image in images]
    assert set(reviewed) <= set(manifest.index) and len(manifest) == 15
    assert manifest.loc[reviewed[0], "group"] == manifest.loc[reviewed[1], "group"] == "line-a" != manifest.loc[reviewed[2], "group"]
    field = json.loads((repo.root / "data" / "prepared" / "summary.json").read_text())["field_figures"]["inbox"]
    assert [(f["model"], f["model_version"], f["reviews"], f["recall"], f["iou"]) for f in field] == [("unet-dice", "v1", 3, 0.0, 0.0)]
    assert "| inbox | unet-dice | v1 | 3 (0 / 0 / 3) | 3 | 0.000 | n/a | 0.000 |" in (repo.root / "reports" / "report.md").read_text()
    assert [line for line in repo.run("dvc", "status").stdout.splitlines() if line.endswith(":") and not line.startswith("\t")] == [f"{SOURCE}:"]
    shards = file_hashes(repo.root / "data" / "preprocessed")
    relabelled = square_mask()
    relabelled[:8, :8] = 255
    store.save(Review(images[2], ".png", relabelled > 0, "correct", "part2.png", None), np.zeros((48, 48), bool), "unet-dice", "v1")
    # up to the shards: what follows them re-runs as after any relabel (the test above)
    assert {"prepare", "preprocess"} <= ran(repo.run("dvc", "repro", "preprocess"))
    changed = {name for name, md5 in file_hashes(repo.root / "data" / "preprocessed").items() if shards.get(name) != md5}
    assert len([name for name in changed if name.endswith(".npz")]) == 1, changed
