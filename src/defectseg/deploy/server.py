"""``defectseg serve``: a model behind HTTP, FastAPI on uvicorn.

- ``GET /health``: the model's name, registry version and stage, arm, run and commit.
- ``POST /predict`` (a multipart form, the image in field ``file``): the has-defect decision, the
  image score its gate compared, the defect pixel count and the mask as a base64 PNG at the
  image's own size, the same bytes ``defectseg predict`` writes for that image.
- ``GET /``: a page where an inspector drops images and sees each with its mask overlaid.

Bad input gets a 4xx with one sentence and changes nothing: a body over ``max_upload_bytes``
(refused from its Content-Length, before it is read), no Content-Length, a form without the
``file`` field, an empty file, bytes that are no image or a truncated one, an image whose header
announces more than ``max_pixels`` (refused from the header, never decoded). Images decode as
predict decodes them (16-bit and colour to 8-bit gray). Concurrent requests share the model
through a ``Batcher``.
"""

import asyncio
import base64
from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from defectseg.data.images import DEFAULT_MAX_PIXELS, read_image_bytes
from defectseg.deploy.batching import Batcher
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


async def _upload(request: Request, max_upload_bytes: int) -> tuple[bytes, str]:
    """The bytes and name of the form's ``file`` field, or ``Refused``."""
    length = request.headers.get("content-length")
    if length is None:
        raise Refused(411, "Send the image with a Content-Length header.")
    if not length.isdigit() or int(length) > max_upload_bytes:
        raise Refused(413, f"The upload is {length} bytes, over the limit of {max_upload_bytes} bytes.")
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise Refused(415, 'Send the image as a multipart form with the field "file".')
    try:
        form = await request.form(max_files=1, max_fields=16)
    except Exception as exc:  # noqa: BLE001 (the multipart parser's errors have no common base)
        raise Refused(400, f"The multipart form could not be read ({exc}).") from None
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        fields = ", ".join(sorted(form.keys())) or "none"
        raise Refused(422, f'Send the image in the form field "file" (fields sent: {fields}).')
    data = await upload.read()
    if not data:
        raise Refused(400, f"The uploaded file {upload.filename or 'file'} is empty.")
    return data, upload.filename or "upload"


def create_app(served: ServedModel, max_upload_bytes: int = MAX_UPLOAD_BYTES, max_pixels: int = DEFAULT_MAX_PIXELS) -> FastAPI:
    """The app serving ``served``."""
    app = FastAPI(title="defectseg", docs_url=None, redoc_url=None)
    batcher = Batcher(served.predict, BATCH_SIZE, BATCH_WAIT_SECONDS)
    page = files("defectseg.deploy").joinpath("page.html").read_text()

    @app.exception_handler(Refused)
    async def refused(_request: Request, exc: Refused) -> JSONResponse:
        return JSONResponse({"error": exc.sentence}, status_code=exc.status)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", **served.info}

    @app.get("/", response_class=HTMLResponse)
    async def index() -> str:
        return page

    @app.post("/predict")
    async def predict(request: Request) -> dict:
        data, name = await _upload(request, max_upload_bytes)
        try:
            original = await run_in_threadpool(read_image_bytes, data, name, max_pixels)
        except ImageTooLargeError as exc:
            raise Refused(413, f"{name}: {exc.problem.removesuffix(' (data.max_pixels)')} (serve --max-pixels).") from None
        except DataError as exc:
            raise Refused(400, f"{name}: {exc.problem}.") from None
        prediction = await asyncio.wrap_future(batcher.submit(original))
        height, width = original.shape
        pixels = int(prediction.mask.sum())
        return {
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
