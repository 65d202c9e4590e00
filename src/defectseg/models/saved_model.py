"""A trained model on disk: ``model.pt`` (a plain state dict) and ``model.json`` beside it.

``model.json`` carries what inference needs without ``params.yaml``: the architecture
and its params, the input size and the pixel normalization, plus how it was trained. An
ensemble (``save_ensemble``) is such a folder too: its architecture lists its members', and its
``model.pt`` holds every member's weights, so it is used wherever one model is.
"""

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from defectseg.config.models import model_settings
from defectseg.data.dataset import Normalization
from defectseg.errors import DataError
from defectseg.foundation.atomic import write_json
from defectseg.measures.decision import Decision
from defectseg.models.checkpoint import load_checkpoint, save_checkpoint
from defectseg.models.ensemble import Ensemble
from defectseg.models.factory import build_model
from defectseg.models.model_format import ENSEMBLE, METADATA, MODEL_FORMAT, THRESHOLD, WEIGHTS


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
        """What the model's input sides must divide by (``ModelSection.side_multiple``; an ensemble's: every member's)."""
        architecture = self.metadata["architecture"]
        members = architecture["members"] if architecture["model"] == ENSEMBLE else [architecture]
        return math.lcm(*(model_settings(a["model"], _settings(a)).side_multiple for a in members))


def save_ensemble(folder: Path, members: list[Path], across_folds: bool = False) -> dict:
    """Write an ensemble of the model folders ``members`` into ``folder`` (averaged at the
    probability map, ``models.ensemble``); return its metadata. The members must take the same
    input (size or geometry) and, unless ``across_folds``, have been trained on the same fold, so
    that images none of them trained on are left to measure the ensemble on. ``across_folds``
    joins a cross-validation's runs, one a fold, into the model that ships (``deploy.ship``): every
    image trained one of them, so that ensemble is not measured, and its ``fold`` is None."""
    loaded = [load_model(member) for member in members]
    if len(loaded) < 2:
        raise DataError(Path(folder), "an ensemble takes two or more model folders")
    first = loaded[0].metadata
    same = ("input_size", "preprocess") if across_folds else ("input_size", "preprocess", "fold")
    for member, saved in zip(members, loaded):
        for key in same:
            if saved.metadata.get(key) != first.get(key):
                raise DataError(Path(member), f"its {key} {saved.metadata.get(key)!r} differs from {members[0]}'s {first.get(key)!r}")
        if saved.metadata["architecture"]["model"] == ENSEMBLE:
            raise DataError(Path(member), "is an ensemble itself: list its members instead")
    ensemble = Ensemble([s.model for s in loaded], [(s.normalization.mean, s.normalization.std) for s in loaded])
    save_checkpoint(Path(folder) / WEIGHTS, {"format": MODEL_FORMAT, "weights": ensemble.state_dict()})
    losses = {json.dumps(s.metadata.get("loss"), sort_keys=True) for s in loaded}
    metadata = {
        "format": MODEL_FORMAT,
        "architecture": {"model": ENSEMBLE, "members": [{**s.metadata["architecture"], "normalization": s.metadata["normalization"]} for s in loaded]},
        "normalization": {"mean": 0.0, "std": 1.0},
        **{key: first[key] for key in same if key in first},
        **({"fold": None} if across_folds else {}),
        "members": [Path(member).name for member in members],
        "loss": loaded[0].metadata.get("loss") if len(losses) == 1 else None,
        "best_epoch": None,
    }
    write_json(Path(folder) / METADATA, metadata)
    return metadata


def _build(architecture: dict) -> torch.nn.Module:
    """The untrained module of an architecture record (an ensemble's: every member's, in an ``Ensemble``)."""
    if architecture["model"] == ENSEMBLE:
        members = architecture["members"]
        normalizations = [(m["normalization"]["mean"], m["normalization"]["std"]) for m in members]
        return Ensemble([_build(m) for m in members], normalizations)
    return build_model(architecture["model"], model_settings(architecture["model"], _settings(architecture)), pretrained=False)


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
        model = _build(arch)
        model.load_state_dict(state["weights"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(meta_path, f"architecture is not usable ({exc})") from None
    except RuntimeError as exc:
        raise DataError(folder / WEIGHTS, f"weights do not fit {arch['model']} ({str(exc).splitlines()[0]})") from None
    model.eval()
    return SavedModel(model, metadata)
