"""``defectseg serve``: a model behind HTTP, FastAPI on uvicorn.

- ``GET /health``: the model's name, registry version and stage, arm, run and commit, its
  operating point (the pixel threshold and the image gate of its decision), whether reviews are on.
- ``GET /card``: the served folder's model card (``README.md``), as Markdown text.
- ``POST /predict`` (a multipart form, the image in field ``file``): the has-defect decision, the
  image score its gate compared, the defect pixel count and the mask as a base64 PNG at the
  image's own size, the same bytes ``defectseg predict`` writes for that image; with ``?image=1``
  also the image as the model saw it (decoded to 8-bit gray, 16-bit and colour included) as a PNG.
- ``GET /``: a page where an inspector drops images and sees each with its mask overlaid.
- ``POST /review`` (with ``--review-dir``; a multipart form: the image in ``file``, the
  inspector's mask as a PNG of 0 and 255 in ``mask``, ``verdict`` accept, clear or correct,
  optionally ``model_version`` and ``group``): the review, kept whole in the review folder
  (``data.reviews``). With a token (``--review-token-file``) a review without
  ``Authorization: Bearer <token>`` gets 401. A mask of another size than the image, a mask
  that is not binary, an unknown verdict, a clear verdict with defect pixels, a review for
  another model version, or reviews turned off get a 4xx with one sentence, and nothing is written.

Bad input gets a 4xx with one sentence and changes nothing: a body over ``max_upload_bytes``
(refused from its Content-Length, before it is read), no Content-Length, a form without the
``file`` field, an empty file, bytes that are no image or a truncated one, an image whose header
announces more than ``max_pixels`` (refused from the header, never decoded). Images decode as
predict decodes them (16-bit and colour to 8-bit gray). Concurrent requests share the model
through a ``Batcher``.
"""

import asyncio
import base64
import hmac
import io
from importlib.resources import files
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from defectseg.data.images import DEFAULT_MAX_PIXELS, read_image_bytes
from defectseg.deploy.batching import Batcher
from defectseg.data.reviews import VERDICTS, Review, ReviewStore, png_bytes
from defectseg.deploy.served_model import ServedModel
from defectseg.errors import DataError, ImageTooLargeError

MAX_UPLOAD_BYTES = 20 * 2**20
BATCH_SIZE = 8
BATCH_WAIT_SECONDS = 0.005


class Refused(Exception):
    """A request answered with ``status`` and one sentence."""

    def __init__(self, status: int, sentence: str):
        super().__init__(sentence)
        self.status, self.sentence = status, sentence


FORMAT_SUFFIX = {"PNG": ".png", "JPEG": ".jpg", "TIFF": ".tif", "BMP": ".bmp"}
MAX_GROUP_LENGTH = 100


async def _upload(request: Request, max_upload_bytes: int) -> tuple[bytes, str]:
    """The bytes and name of the form's ``file`` field, or ``Refused``."""
    return await _file(await _form(request, max_upload_bytes), "file")


async def _form(request: Request, max_upload_bytes: int):
    """The request's multipart form, its size checked from Content-Length before it is read, or ``Refused``."""
    length = request.headers.get("content-length")
    if length is None:
        raise Refused(411, "Send the image with a Content-Length header.")
    if not length.isdigit() or int(length) > max_upload_bytes:
        raise Refused(413, f"The upload is {length} bytes, over the limit of {max_upload_bytes} bytes.")
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise Refused(415, 'Send the image as a multipart form with the field "file".')
    try:
        return await request.form(max_files=2, max_fields=16)
    except Exception as exc:  # noqa: BLE001 (the multipart parser's errors have no common base)
        raise Refused(400, f"The multipart form could not be read ({exc}).") from None


async def _file(form, field: str) -> tuple[bytes, str]:
    """The bytes and name of the form's file ``field``, or ``Refused``."""
    upload = form.get(field)
    what = "image" if field == "file" else field
    if not isinstance(upload, UploadFile):
        fields = ", ".join(sorted(form.keys())) or "none"
        raise Refused(422, f'Send the {what} in the form field "{field}" (fields sent: {fields}).')
    data = await upload.read()
    if not data:
        raise Refused(400, f"The uploaded file {upload.filename or field} is empty.")
    return data, upload.filename or "upload"


def review_mask(data: bytes, shape: tuple[int, int], max_pixels: int) -> np.ndarray:
    """The inspector's mask (bool) from PNG bytes: the image's size, 0 and 255 (or 0 and 1) only, in
    one channel or as opaque gray RGB(A) (what a browser's canvas writes); else ``Refused``."""
    try:
        image = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError):
        raise Refused(400, "The mask could not be read as an image: send a PNG of 0 and 255.") from None
    width, height = image.size
    if width * height > max_pixels:
        raise Refused(413, f"The mask is {width}x{height}, over the limit of {max_pixels} pixels.")
    if (height, width) != shape:
        raise Refused(422, f"The mask is {width}x{height} but the image is {shape[1]}x{shape[0]}.")
    if image.mode not in ("L", "1", "RGB", "RGBA"):
        raise Refused(422, f"The mask is {image.mode}: send an 8-bit gray PNG of 0 and 255.")
    try:
        pixels = np.asarray(image).astype(np.uint8)
    except OSError as exc:
        raise Refused(400, f"The mask could not be decoded ({exc}).") from None
    if pixels.ndim == 3:  # a browser canvas's PNG: each pixel black or white, opaque
        colour, alpha = pixels[..., :3], pixels[..., 3] if pixels.shape[2] == 4 else None
        if (colour != colour[..., :1]).any() or (alpha is not None and (alpha != 255).any()):
            raise Refused(422, "The mask has coloured or transparent pixels: send black (0) and white (255) only.")
        pixels = colour[..., 0]
    values = pixels
    found = set(np.unique(values).tolist())
    if not (found <= {0, 255} or found <= {0, 1}):
        other = sorted(found - {0, 255})[0]
        raise Refused(422, f"The mask is not binary: it holds the value {other}; send 0 and 255 only.")
    return values > 0


def _group(form) -> str | None:
    group = form.get("group")
    if group is None or group == "":
        return None
    if not isinstance(group, str) or len(group) > MAX_GROUP_LENGTH or any(c in group for c in ',\n\r"'):
        raise Refused(422, f"The group must be a name of at most {MAX_GROUP_LENGTH} characters without commas, quotes or line breaks.")
    return group


def create_app(
    served: ServedModel, max_upload_bytes: int = MAX_UPLOAD_BYTES, max_pixels: int = DEFAULT_MAX_PIXELS, review_dir: Path | None = None, review_token: str | None = None
) -> FastAPI:
    """The app serving ``served``; ``review_dir`` turns on ``POST /review``, ``review_token`` guards it."""
    app = FastAPI(title="defectseg", docs_url=None, redoc_url=None)
    store = None if review_dir is None else ReviewStore(review_dir)
    version = served.info.get("version") or "unregistered"
    batcher = Batcher(served.predict, BATCH_SIZE, BATCH_WAIT_SECONDS)
    page = files("defectseg.deploy").joinpath("page.html").read_text()

    @app.exception_handler(Refused)
    async def refused(_request: Request, exc: Refused) -> JSONResponse:
        return JSONResponse({"error": exc.sentence}, status_code=exc.status)

    decision = served.decision
    operating_point = {"pixel_threshold": decision.threshold, "image_threshold": decision.image_threshold, "min_region_share": decision.min_region_share}
    card_path = Path(served.folder) / "README.md"

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", **served.info, "operating_point": operating_point, "reviews": store is not None, "card": card_path.is_file()}

    @app.get("/card", response_class=PlainTextResponse)
    async def card() -> PlainTextResponse:
        if not card_path.is_file():
            raise Refused(404, "This model folder has no model card (README.md).")
        return PlainTextResponse(card_path.read_text(), media_type="text/markdown; charset=utf-8")

    @app.get("/", response_class=HTMLResponse)
    async def index() -> str:
        return page

    async def decoded(data: bytes, name: str) -> np.ndarray:
        try:
            return await run_in_threadpool(read_image_bytes, data, name, max_pixels)
        except ImageTooLargeError as exc:
            raise Refused(413, f"{name}: {exc.problem.removesuffix(' (data.max_pixels)')} (serve --max-pixels).") from None
        except DataError as exc:
            raise Refused(400, f"{name}: {exc.problem}.") from None

    @app.post("/review")
    async def review(request: Request) -> dict:
        if store is None:
            raise Refused(404, "Reviews are off on this server: start it with --review-dir DIR.")
        if review_token is not None and not hmac.compare_digest(request.headers.get("authorization", "").encode(), f"Bearer {review_token}".encode()):
            raise Refused(401, "This server takes reviews only with its token: send the header Authorization: Bearer <token>.")
        form = await _form(request, max_upload_bytes)
        verdict = form.get("verdict")
        if verdict not in VERDICTS:
            raise Refused(422, f"Unknown verdict {verdict!r}: send accept, clear or correct.")
        sent_version = form.get("model_version")
        if sent_version and sent_version != version:
            raise Refused(409, f"This review is for model version {sent_version}, but the server now serves {version}: reload the page.")
        data, name = await _file(form, "file")
        original = await decoded(data, name)
        if verdict == "clear" and form.get("mask") is None:
            mask = np.zeros(original.shape, bool)
        else:
            mask = review_mask((await _file(form, "mask"))[0], original.shape, max_pixels)
        if verdict == "clear" and mask.any():
            raise Refused(422, f"A clear verdict says the image has no defect, but its mask marks {int(mask.sum())} pixels.")
        group = _group(form)
        suffix = FORMAT_SUFFIX.get(Image.open(io.BytesIO(data)).format, ".png")
        prediction = await asyncio.wrap_future(batcher.submit(original))
        row = await run_in_threadpool(store.save, Review(data, suffix, mask, verdict, name, group), prediction.mask, served.info["arm"], version)
        return {"saved": row["id"], "verdict": verdict, "defect_pixels": row["mask_defect_pixels"], "model_version": version, "group": group}

    @app.post("/predict")
    async def predict(request: Request) -> dict:
        data, name = await _upload(request, max_upload_bytes)
        original = await decoded(data, name)
        prediction = await asyncio.wrap_future(batcher.submit(original))
        height, width = original.shape
        pixels = int(prediction.mask.sum())
        shown = {"image_png": base64.b64encode(png_bytes(original)).decode("ascii")} if request.query_params.get("image") == "1" else {}
        return {
            **shown,
            "image": name,
            "width": width,
            "height": height,
            "has_defect": pixels > 0,
            "defect_probability": round(prediction.score, 6),
            "defect_pixels": pixels,
            "mask_png": base64.b64encode(prediction.png).decode("ascii"),
            "model": {key: served.info[key] for key in ("name", "version", "arm", "commit")},
        }

    return app
