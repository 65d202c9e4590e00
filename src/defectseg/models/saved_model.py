"""A trained model on disk: ``model.pt`` (a plain state dict) and ``model.json`` beside it.

``model.json`` carries what inference needs without ``params.yaml``: the architecture
and its params, the input size and the pixel normalization, plus how it was trained.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from defectseg.config.models import ModelSection, model_settings
from defectseg.data.dataset import Normalization
from defectseg.errors import DataError
from defectseg.foundation.atomic import write_json
from defectseg.measures.decision import Decision
from defectseg.models.checkpoint import load_checkpoint, save_checkpoint
from defectseg.models.factory import build_model

MODEL_FORMAT = "defectseg-model-1"
WEIGHTS = "model.pt"
METADATA = "model.json"
THRESHOLD = "threshold.json"


@dataclass(frozen=True)
class SavedModel:
    """A loaded model in eval mode, with its metadata."""

    model: torch.nn.Module
    metadata: dict

    @property
    def normalization(self) -> Normalization:
        return Normalization(**self.metadata["normalization"])

    @property
    def side_multiple(self) -> int:
        """What the model's input sides must divide by (``ModelSection.side_multiple``)."""
        architecture = self.metadata["architecture"]
        return model_settings(architecture["model"], _settings(architecture)).side_multiple


def save_model(folder: Path, weights: dict, model_name: str, settings: ModelSection, normalization: Normalization, extra: dict) -> None:
    """Write ``model.pt`` and ``model.json`` into ``folder``, each atomically."""
    folder = Path(folder)
    save_checkpoint(folder / WEIGHTS, {"format": MODEL_FORMAT, "weights": weights})
    metadata = {
        "format": MODEL_FORMAT,
        "architecture": {"model": model_name, "settings": settings.model_dump(exclude={"train"})},
        "normalization": {"mean": normalization.mean, "std": normalization.std},
        **extra,
    }
    write_json(folder / METADATA, metadata)


def save_decision(folder: Path, decision: Decision, chosen_on: str, score: float) -> None:
    """Write the decision chosen by evaluate (threshold, smallest region kept) beside the weights."""
    record = {
        "threshold": decision.threshold,
        "image_threshold": decision.image_threshold,
        "min_region_share": decision.min_region_share,
        "flip_tta": decision.flip_tta,
        "score_top_share": decision.score_top_share,
        "head_score": decision.head_score,
        "chosen_on": chosen_on,
        "iou": score,
    }
    write_json(Path(folder) / THRESHOLD, record)


def load_decision(folder: Path) -> Decision | None:
    """The decision saved beside the model, or None if evaluate has not written one."""
    path = Path(folder) / THRESHOLD
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
        return Decision(
            float(record["threshold"]),
            float(record["min_region_share"]),
            float(record.get("image_threshold", 0.0)),
            bool(record.get("flip_tta", False)),
            float(record.get("score_top_share", 0.0)),
            bool(record.get("head_score", False)),
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise DataError(path, f"not a threshold file ({exc})") from None


def _settings(architecture: dict) -> dict:
    """The model's settings section; models saved before ``models.<name>`` existed kept
    ``unet``, ``downscale`` and ``refine`` beside the name."""
    if "settings" in architecture:
        return architecture["settings"]
    if architecture["model"] == "unet":
        refine = architecture.get("refine", {"width": 0, "window": 64})
        return {**architecture["unet"], "downscale": architecture["downscale"], "refine": refine}
    return {"downscale": architecture["downscale"]}


def model_folder(path: Path) -> Path:
    """The model folder for a path that names the folder or a file inside it."""
    path = Path(path)
    if path.is_dir():
        return path
    if path.exists() or path.name in (WEIGHTS, METADATA):
        return path.parent
    raise DataError(path, "model path does not exist")


def load_model(folder: Path) -> SavedModel:
    """Load a model saved by ``save_model``; anything else is refused with a clear error."""
    folder = model_folder(folder)
    meta_path = folder / METADATA
    try:
        metadata = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise DataError(meta_path, "model metadata not found (is this a defectseg model folder?)") from None
    except json.JSONDecodeError as exc:
        raise DataError(meta_path, f"not valid JSON ({exc})") from None
    if not isinstance(metadata, dict) or metadata.get("format") != MODEL_FORMAT:
        raise DataError(meta_path, f"not a defectseg model (format is not {MODEL_FORMAT})")
    state = load_checkpoint(folder / WEIGHTS)
    if state.get("format") != MODEL_FORMAT:
        raise DataError(folder / WEIGHTS, "not a defectseg model checkpoint")
    arch = metadata["architecture"]
    try:
        model = build_model(arch["model"], model_settings(arch["model"], _settings(arch)), pretrained=False)
        model.load_state_dict(state["weights"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(meta_path, f"architecture is not usable ({exc})") from None
    except RuntimeError as exc:
        raise DataError(folder / WEIGHTS, f"weights do not fit {arch['model']} ({str(exc).splitlines()[0]})") from None
    model.eval()
    return SavedModel(model, metadata)
