"""``defectseg serve`` as a real uvicorn server on 127.0.0.1: its answers are predict's, and bad
input gets a 4xx with one sentence while the server stays up and answers the same as before."""

import base64
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
    assert page.status_code == 200 and 'id="files"' in page.text and "fetch(\"predict\"" in page.text


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
