"""The inspector's reviews of served images, kept as a data source that ``prepare`` reads.

``defectseg serve --review-dir DIR`` writes each review into DIR in the plain layout
(``images/<hash>.<suffix>`` with ``masks/<hash>.png``, 0 and 255), named from the SHA-256 of
the image's bytes (never from the uploaded name), and appends a row to ``reviews.csv``: when,
the verdict, the served model, the image's hash and original name, the served and the
inspector's defect pixels and their overlap (true positives, false positives, false negatives
of the served mask against the inspector's). An inspector's group (one physical object seen
in several images) goes to ``groups.csv``, which ``prepare`` reads; an image without one is
its own group. Every file is written whole (a temporary file, then a rename) under one lock,
so concurrent reviews lose nothing and a reader never sees half a file. The same image
reviewed again keeps the later mask; ``reviews.csv`` keeps both rows.
"""

import csv
import hashlib
import io
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from defectseg.foundation.atomic import write_bytes, write_text

VERDICTS = ("accept", "clear", "correct")
PROVENANCE = "reviews.csv"
GROUPS = "groups.csv"
COLUMNS = ["time", "verdict", "model", "model_version", "image_sha256", "id", "original_name", "served_defect_pixels", "mask_defect_pixels", "tp", "fp", "fn", "group"]
ID_LENGTH = 20


@dataclass(frozen=True)
class Review:
    """One submission: the image's bytes and suffix, the inspector's mask (bool), and what was said of it."""

    image: bytes
    suffix: str
    mask: np.ndarray
    verdict: str
    original_name: str
    group: str | None


def read_reviews(folder: Path) -> list[dict]:
    """The provenance table of the review folder ``folder``, oldest first (none where no review was kept)."""
    path = Path(folder) / PROVENANCE
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def field_figures(rows: list[dict]) -> list[dict]:
    """Per served model version, what the inspectors said of it: reviews by verdict, and on each
    image's latest review of that version, the image recall, the false-alarm rate and the pooled
    IoU of the served masks against the inspectors' (None where no image of the kind was reviewed)."""
    versions: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        versions.setdefault((row["model"], row["model_version"]), []).append(row)
    result = []
    for (model, version), reviewed in sorted(versions.items()):
        latest = list({row["id"]: row for row in reviewed}.values())
        defect = [row for row in latest if int(row["mask_defect_pixels"]) > 0]
        free = [row for row in latest if int(row["mask_defect_pixels"]) == 0]
        tp = sum(int(row["tp"]) for row in latest)
        union = sum(int(row[key]) for row in latest for key in ("tp", "fp", "fn"))
        result.append({
            "model": model, "model_version": version, "reviews": len(reviewed), "images": len(latest),
            "verdicts": {verdict: sum(row["verdict"] == verdict for row in reviewed) for verdict in VERDICTS},
            "recall": _flagged_share(defect),
            "false_alarms": _flagged_share(free),
            "iou": tp / union if union else None,
        })  # fmt: skip
    return result


def _flagged_share(rows: list[dict]) -> float | None:
    """The share of ``rows`` whose served mask has a defect pixel (None for no rows)."""
    return sum(int(row["served_defect_pixels"]) > 0 for row in rows) / len(rows) if rows else None


def image_id(data: bytes) -> str:
    """The name of an image's files: the start of the SHA-256 of its bytes."""
    return hashlib.sha256(data).hexdigest()[:ID_LENGTH]


def png_bytes(image: np.ndarray) -> bytes:
    """An 8-bit single-channel array (an image, or a mask of 0 and 255) as PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


class ReviewStore:
    """The review folder: its pairs, its provenance table and its groups file."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        for sub in ("images", "masks"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def save(self, review: Review, served: np.ndarray, model: str, version: str) -> dict:
        """Write ``review`` (the served mask ``served`` beside it for the overlap) whole; return its provenance row."""
        name = image_id(review.image)
        truth, predicted = review.mask.astype(bool), served.astype(bool)
        row = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "verdict": review.verdict,
            "model": model,
            "model_version": version,
            "image_sha256": hashlib.sha256(review.image).hexdigest(),
            "id": name,
            "original_name": review.original_name,
            "served_defect_pixels": int(predicted.sum()),
            "mask_defect_pixels": int(truth.sum()),
            "tp": int((truth & predicted).sum()),
            "fp": int((~truth & predicted).sum()),
            "fn": int((truth & ~predicted).sum()),
            "group": review.group or "",
        }
        with self._lock:
            write_bytes(self.folder / "images" / f"{name}{review.suffix}", review.image)
            write_bytes(self.folder / "masks" / f"{name}.png", png_bytes(truth.astype(np.uint8) * 255))
            self._append(row)
            if review.group:
                self._set_group(name, review.group)
        return row

    def rows(self) -> list[dict]:
        """The provenance table's rows, oldest first."""
        return read_reviews(self.folder)

    def _append(self, row: dict) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows([*self.rows(), row])
        write_text(self.folder / PROVENANCE, buffer.getvalue())

    def _set_group(self, name: str, group: str) -> None:
        path = self.folder / GROUPS
        groups = {}
        if path.is_file():
            with open(path, newline="") as handle:
                groups = {row["id"]: row["group"] for row in csv.DictReader(handle)}
        groups[name] = group
        lines = "id,group\n" + "".join(f"{key},{value}\n" for key, value in sorted(groups.items()))
        write_text(path, lines)
