"""``defectseg serve`` as a real uvicorn server on 127.0.0.1: its answers are predict's, and bad
input gets a 4xx with one sentence while the server stays up and answers the same as before."""

import base64
import hashlib
import io
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
import torch
from PIL import Image

from conftest import gray, running_server, write_png
from defectseg.evaluation.predict import predict


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    """Tiles as a user sends them: 8-bit gray of two sizes, 16-bit gray, colour, JPEG."""
    root = tmp_path_factory.mktemp("tiles")
    tile = gray(96, 128, seed=3)
    tile[30:60, 40:90] = 250  # a bright patch, a defect to the tiny model
    paths = [write_png(root / "gray.png", tile), write_png(root / "small.png", gray(40, 56, seed=4))]
    paths.append(write_png(root / "wide16.png", tile.astype(np.uint16) * 257))
    paths.append(write_png(root / "colour.png", np.stack([tile, np.roll(tile, 3, 0), tile // 2], axis=-1)))
    Image.fromarray(tile).save(root / "photo.jpg", quality=90)
    return [*paths, root / "photo.jpg"]


@pytest.fixture(scope="module")
def server(shipped_model):
    with running_server("--model", str(shipped_model), "--max-upload-mb", "0.5") as url:
        yield url


def post(url: str, path: Path | None = None, data: bytes | None = None, field: str = "file", name: str = "tile.png") -> requests.Response:
    body = path.read_bytes() if path is not None else data
    return requests.post(f"{url}/predict", files={field: (path.name if path else name, body)}, timeout=60)


def test_health_names_the_model_its_arm_and_run(server):
    health = requests.get(f"{server}/health", timeout=10).json()
    assert health["status"] == "ok" and health["model"] == "unet"
    assert health["arm"].startswith("unet-") and health["run"].startswith(health["arm"] + "-seed0-fold0")
    assert health["version"] is None, "a folder served with --model is no registry version"


def same_as_predict(url: str, model: Path, images: list[Path], out: Path, runtime: str) -> None:
    predict(model, images, out, None, 16, False, "cpu", runtime=runtime)
    rows = pd.read_csv(out / "predictions.csv").set_index("mask")
    for path in images:
        answer = post(url, path).json()
        mask = base64.b64decode(answer["mask_png"])
        assert mask == (out / f"{path.stem}.png").read_bytes(), path.name
        row = rows.loc[f"{path.stem}.png"]
        assert (answer["width"], answer["height"]) == (row["width"], row["height"]) == Image.open(path).size
        assert answer["has_defect"] == bool(row["has_defect"]) and answer["defect_pixels"] == row["defect_pixels"]
        assert 0.0 <= answer["defect_probability"] <= 1.0


def test_served_masks_are_the_bytes_predict_writes_with_onnx_runtime(server, shipped_model, images, tmp_path):
    assert requests.get(f"{server}/health", timeout=10).json()["runtime"] == "onnxruntime"
    same_as_predict(server, shipped_model, images, tmp_path, "onnxruntime")


def test_served_masks_are_the_bytes_predict_writes_with_torch(shipped_model, images, tmp_path):
    with running_server("--model", str(shipped_model), "--runtime", "torch") as url:
        assert requests.get(f"{url}/health", timeout=10).json()["runtime"] == "torch"
        same_as_predict(url, shipped_model, images, tmp_path, "torch")


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header(width: int, height: int) -> bytes:
    """A PNG that announces ``width`` x ``height`` pixels but holds only a few bytes of pixel data:
    decoding it would take its whole size in memory; its header alone says it is too large."""
    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


BAD = {
    "not an image": (dict(data=b"this is not an image at all", name="notes.png"), 400, "notes.png: not a readable image"),
    "truncated jpeg": (None, 400, "photo.jpg: image data is truncated or corrupt"),
    "empty body": (dict(data=b"", name="empty.png"), 400, "The uploaded file empty.png is empty."),
    "over the size limit": (dict(data=b"\0" * 600_000, name="big.png"), 413, "over the limit of 524288 bytes"),
    "400 megapixels": (dict(data=png_header(20_000, 20_000), name="huge.png"), 413, "huge.png: image is 20000x20000 = 400,000,000 pixels"),
    "wrong field": (dict(data=b"x", name="tile.png", field="image"), 422, 'Send the image in the form field "file" (fields sent: image).'),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_input_gets_one_sentence_and_the_next_good_request_the_same_answer(server, images, case):
    before = post(server, images[0]).json()
    arguments, status, sentence = BAD[case]
    if arguments is None:  # a JPEG cut in half
        arguments = dict(data=images[-1].read_bytes()[: images[-1].stat().st_size // 2], name="photo.jpg")
    response = post(server, **arguments)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert sentence in error and "\n" not in error and "Traceback" not in error
    assert post(server, images[0]).json() == before


def test_a_body_without_a_length_is_refused(server):
    response = requests.post(f"{server}/predict", data=iter([b"--x\r\n"]), headers={"Content-Type": "multipart/form-data; boundary=x"}, timeout=10)
    assert response.status_code == 411 and response.json() == {"error": "Send the image with a Content-Length header."}


def test_eight_concurrent_clients_get_the_answers_of_one_at_a_time(server, images):
    alone = {path.name: post(server, path).json() for path in images}
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda path: (path.name, post(server, path).json()), images * 4))
    assert all(answer == alone[name] for name, answer in together)


def test_the_page_is_served(server):
    page = requests.get(server, timeout=10)
    assert page.status_code == 200 and 'id="files"' in page.text and "fetch(\"predict?image=1\"" in page.text and "fetch(\"review\"" in page.text


def test_onnx_runtime_computes_the_torch_models_logits(shipped_model):
    from defectseg.models.onnx_runtime import OnnxModel, with_runtime
    from defectseg.models.saved_model import load_model

    saved = load_model(shipped_model)
    onnx = with_runtime(load_model(shipped_model), shipped_model, "onnxruntime")
    assert isinstance(onnx.model, OnnxModel) and with_runtime(saved, shipped_model, "torch") is saved
    height, width = saved.metadata["input_size"]
    images = torch.randn(3, 1, height, width, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        np.testing.assert_allclose(onnx.model(images).numpy(), saved.model.eval()(images).numpy(), atol=1e-4)


# Reviews: POST /review keeps the inspector's verdicts as a data source (docs/review.md).


def review(url: str, image: Path, mask: np.ndarray | None, verdict: str = "correct", token: str | None = None, **fields) -> requests.Response:
    files = {"file": (image.name, image.read_bytes())}
    if mask is not None:
        buffer = io.BytesIO()
        Image.fromarray(mask).save(buffer, format="PNG")
        files["mask"] = ("mask.png", buffer.getvalue())
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.post(f"{url}/review", files=files, data={"verdict": verdict, **fields}, headers=headers, timeout=60)


def folder_state(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def painted(shape, box=(10, 30, 20, 50)) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    top, bottom, left, right = box
    mask[top:bottom, left:right] = 255
    return mask


@pytest.fixture(scope="module")
def review_server(shipped_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("reviews") / "inbox"
    with running_server("--model", str(shipped_model), "--max-upload-mb", "0.5", "--review-dir", str(folder)) as url:
        yield url, folder


def test_a_review_is_kept_as_a_pair_named_by_the_images_hash_with_a_provenance_row(review_server, images):
    url, folder = review_server
    image = images[0]
    first, second = painted((96, 128)), painted((96, 128), (50, 70, 60, 100))
    answer = review(url, image, first, group="tile-12").json()
    name = hashlib.sha256(image.read_bytes()).hexdigest()[:20]
    assert answer["saved"] == name and answer["defect_pixels"] == 600 and answer["model_version"] == "unregistered"
    assert (folder / "images" / f"{name}.png").read_bytes() == image.read_bytes()
    assert np.array_equal(np.asarray(Image.open(folder / "masks" / f"{name}.png")), first)
    again = review(url, image, second, verdict="correct")
    assert again.status_code == 200
    assert np.array_equal(np.asarray(Image.open(folder / "masks" / f"{name}.png")), second), "the later mask is kept"
    rows = pd.read_csv(folder / "reviews.csv")
    mine = rows[rows["id"] == name]
    assert len(mine) == 2 and mine["mask_defect_pixels"].tolist() == [600, 800]
    assert mine["original_name"].tolist() == [image.name, image.name] and (mine["image_sha256"].str[:20] == name).all()
    assert (mine["tp"] + mine["fn"] == mine["mask_defect_pixels"]).all() and (mine["tp"] + mine["fp"] == mine["served_defect_pixels"]).all()
    assert "tile-12" in (folder / "groups.csv").read_text()


@pytest.mark.parametrize(
    "how, status, sentence",
    [
        ("mask of another size", 422, "The mask is 64x32 but the image is 128x96."),
        ("mask not binary", 422, "The mask is not binary"),
        ("unknown verdict", 422, "Unknown verdict 'maybe'"),
        ("clear with pixels", 422, "A clear verdict says the image has no defect"),
        ("another model version", 409, "for model version v9.9.9"),
        ("body too large", 413, "over the limit"),
    ],
)
def test_a_bad_review_gets_its_4xx_sentence_and_leaves_the_folder_as_it_was(review_server, images, tmp_path, how, status, sentence):
    url, folder = review_server
    image = images[0]
    review(url, image, painted((96, 128)))
    before = folder_state(folder)
    if how == "mask of another size":
        answer = review(url, image, painted((32, 64), (0, 5, 0, 5)))
    elif how == "mask not binary":
        answer = review(url, image, painted((96, 128)) // 2 + 1)
    elif how == "unknown verdict":
        answer = review(url, image, painted((96, 128)), verdict="maybe")
    elif how == "clear with pixels":
        answer = review(url, image, painted((96, 128)), verdict="clear")
    elif how == "another model version":
        answer = review(url, image, painted((96, 128)), model_version="v9.9.9")
    else:
        big = write_png(tmp_path / "big.png", np.random.default_rng(0).integers(0, 256, (900, 900), dtype=np.uint8))
        answer = review(url, big, painted((900, 900)))
    assert answer.status_code == status and sentence in answer.json()["error"]
    assert folder_state(folder) == before
    assert requests.get(f"{url}/health", timeout=10).json()["status"] == "ok"


def test_sixteen_inspectors_reviewing_at_once_lose_no_review(review_server, tmp_path):
    url, folder = review_server
    rows_before = len(pd.read_csv(folder / "reviews.csv")) if (folder / "reviews.csv").exists() else 0
    paths = [write_png(tmp_path / f"part{i}.png", gray(48, 48, seed=100 + i)) for i in range(16)]
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda p: review(url, p, painted((48, 48), (5, 15, 5, 15))), paths))
    assert [a.status_code for a in answers] == [200] * 16
    names = {a.json()["saved"] for a in answers}
    assert len(names) == 16 and all((folder / "images" / f"{n}.png").is_file() and (folder / "masks" / f"{n}.png").is_file() for n in names)
    assert len(pd.read_csv(folder / "reviews.csv")) == rows_before + 16


def test_reviews_are_refused_when_the_server_was_started_without_a_review_folder(server, images):
    answer = review(server, images[0], painted((96, 128)))
    assert answer.status_code == 404 and "start it with --review-dir" in answer.json()["error"]


def test_with_a_token_file_a_review_without_the_token_gets_401_and_writes_nothing(shipped_model, images, tmp_path):
    (tmp_path / "token").write_text("s3cret\n")
    folder = tmp_path / "inbox"
    with running_server("--model", str(shipped_model), "--review-dir", str(folder), "--review-token-file", str(tmp_path / "token")) as url:
        refused = review(url, images[0], painted((96, 128)))
        wrong = review(url, images[0], painted((96, 128)), token="guess")
        assert (refused.status_code, wrong.status_code) == (401, 401) and "Authorization: Bearer" in refused.json()["error"]
        assert folder_state(folder) == {}
        assert review(url, images[0], painted((96, 128)), token="s3cret").status_code == 200
