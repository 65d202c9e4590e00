"""Run a trained model on new images: masks at each input's own size, overlays, a CSV.

Inputs may be any size, 8- or 16-bit gray or colour. Each image is resized to the
model's input size, the defect probability map is resized back to the original size,
and evaluate's decision (image gate, threshold, small-region filter) is applied there,
just as evaluate scored it. A file that cannot be read is listed as a failure and the
rest are still processed.
"""

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from defectseg.data.dataset import image_array
from defectseg.data.images import IMAGE_SUFFIXES, read_image
from defectseg.errors import DataError, DefectsegError
from defectseg.evaluation.overlays import prediction_overlay
from defectseg.foundation.atomic import atomic_file, check_output_path
from defectseg.measures.decision import Decision
from defectseg.models.compute import Compute, pick_device
from defectseg.models.inference import at_size, model_input, per_image_heads, predict_outputs
from defectseg.models.onnx_runtime import with_runtime
from defectseg.models.saved_model import SavedModel, load_decision, load_model, model_folder

CSV_NAME = "predictions.csv"


@dataclass
class Outcome:
    """What a predict call did: one CSV row per image written, and the failures."""

    rows: list[dict] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)


def collect_inputs(paths: list[Path], outcome: Outcome) -> list[Path]:
    """Image files named directly or found in named folders (not recursive)."""
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                outcome.failures.append((str(path), "folder holds no image files"))
            files.extend(found)
        elif not path.exists():
            outcome.failures.append((str(path), "file not found"))
        elif path.suffix.lower() not in IMAGE_SUFFIXES:
            outcome.failures.append((str(path), f"not an image file (suffix {path.suffix or 'none'})"))
        else:
            files.append(path)
    seen: dict[str, Path] = {}
    unique = []
    for path in files:
        if path.stem in seen:
            outcome.failures.append((str(path), f"same name as {seen[path.stem]}: its mask would overwrite the other"))
        else:
            seen[path.stem] = path
            unique.append(path)
    return unique


def _read(path: Path, saved: SavedModel) -> tuple[np.ndarray, np.ndarray] | str:
    try:
        original = read_image(path)
    except DataError as exc:
        return exc.problem
    return original, model_input(saved, original)


def _write_png(path: Path, array: np.ndarray) -> None:
    with atomic_file(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def predicted_mask(original: np.ndarray, probability: np.ndarray, head: float | None, decision: Decision) -> tuple[np.ndarray, float]:
    """The boolean mask at ``original``'s size (``probability`` resized to it, then ``decision``
    applied, with the image head's probability ``head`` from a model with one), and the image
    score its gate compared: what predict writes and what ``defectseg serve`` answers."""
    sized = at_size(probability, *original.shape)
    return decision.apply(sized, head), decision.score(sized, head)


def save_prediction(
    path: Path, original: np.ndarray, probability: np.ndarray, head: float | None, decision: Decision, out_dir: Path, overlay: bool
) -> dict:
    """Apply ``decision`` at ``original``'s size (``predicted_mask``), write the mask (and overlay); return its CSV row."""
    height, width = original.shape
    predicted, _ = predicted_mask(original, probability, head, decision)
    _write_png(out_dir / f"{path.stem}.png", predicted.astype(np.uint8) * 255)
    if overlay:
        _write_png(out_dir / f"{path.stem}_overlay.png", prediction_overlay(original, predicted))
    pixels = int(predicted.sum())
    return {
        "image": str(path),
        "mask": f"{path.stem}.png",
        "width": width,
        "height": height,
        "defect_pixels": pixels,
        "defect_area_fraction": round(pixels / predicted.size, 6),
        "has_defect": pixels > 0,
    }


def predict_images(
    saved: SavedModel, files: list[Path], decision: Decision, out_dir: Path, batch_size: int, overlay: bool, compute: Compute, outcome: Outcome
) -> None:
    """Predict every file in batches, writing masks (and overlays) into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(os.cpu_count()) as pool, tqdm(total=len(files), unit="img", file=sys.stderr, disable=None) as bar:
        for start in range(0, len(files), batch_size):
            chunk = files[start : start + batch_size]
            read = list(pool.map(lambda p: _read(p, saved), chunk))
            good = [(p, r) for p, r in zip(chunk, read) if not isinstance(r, str)]
            outcome.failures.extend((str(p), r) for p, r in zip(chunk, read) if isinstance(r, str))
            if good:
                batch = image_array([r[1] for _, r in good])
                probabilities, heads = predict_outputs(saved, batch, batch_size, compute, decision.flip_tta)
                outcome.rows.extend(
                    pool.map(lambda item: save_prediction(item[0][0], item[0][1][0], item[1], item[2], decision, out_dir, overlay), zip(good, probabilities, per_image_heads(heads, len(good))))
                )
            bar.update(len(chunk))


def predict(
    model_path: Path,
    inputs: list[Path],
    out_dir: Path,
    threshold: float | None,
    batch_size: int,
    overlay: bool,
    device: str,
    precision: str = "fp32",
    runtime: str = "torch",
) -> Outcome:
    """The ``defectseg predict`` command: returns what was written and what failed.

    ``precision`` bf16 is faster on CPUs with bf16 support; fp32 (the default) matches the
    arithmetic evaluate used to choose the threshold. ``runtime`` onnxruntime runs the model in
    ONNX Runtime (``models.onnx_runtime``), as ``defectseg serve`` does by default.
    """
    out_dir = Path(out_dir)
    check_output_path(out_dir, folder=True, option="--out")
    folder = model_folder(model_path)
    saved = with_runtime(load_model(folder), folder, runtime)
    decision = load_decision(folder)
    if threshold is not None:
        if not 0.0 < threshold < 1.0:
            raise DefectsegError(f"--threshold must be between 0 and 1, got {threshold}")
        decision = replace(decision, threshold=threshold) if decision else Decision(threshold)
    if decision is None:
        raise DefectsegError(f"{folder}: no threshold.json beside the model (run the evaluate stage) and no --threshold given")
    outcome = Outcome()
    files = collect_inputs(inputs, outcome)
    if not files:
        problems = "; ".join(f"{p}: {why}" for p, why in outcome.failures) or "no inputs given"
        raise DefectsegError(f"no images to predict ({problems})")
    compute = Compute(pick_device(device, "--device"), bf16=precision == "bf16", channels_last=True)
    predict_images(saved, files, decision, out_dir, batch_size, overlay, compute, outcome)
    with atomic_file(out_dir / CSV_NAME) as tmp:
        pd.DataFrame(outcome.rows, columns=["image", "mask", "width", "height", "defect_pixels", "defect_area_fraction", "has_defect"]).to_csv(tmp, index=False)
    return outcome
