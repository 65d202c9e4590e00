"""A model folder loaded for serving: its model, its decision, what ``/health`` says of it, and
the same computation as ``defectseg predict`` on a batch of decoded images."""

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from defectseg.data.dataset import image_array
from defectseg.data.reviews import png_bytes
from defectseg.deploy.registry import Entry
from defectseg.deploy.ship import CARD
from defectseg.errors import DefectsegError
from defectseg.evaluation.predict import predicted_mask
from defectseg.measures.decision import Decision
from defectseg.models.compute import Compute, pick_device
from defectseg.models.inference import model_input, per_image_heads, predict_outputs
from defectseg.models.onnx_runtime import OnnxModel, with_runtime
from defectseg.models.saved_model import SavedModel, load_decision, load_model, model_folder


@dataclass(frozen=True)
class Prediction:
    """One image's answer: the mask at the image's own size and the image score its gate compared."""

    mask: np.ndarray
    score: float

    @property
    def png(self) -> bytes:
        """The mask as ``defectseg predict`` writes it: an 8-bit PNG, 255 where defect."""
        return png_bytes(self.mask.astype(np.uint8) * 255)


def _commit_of(folder: Path) -> str | None:
    """The commit checked out where ``folder`` lies, when it lies in a git work tree."""
    result = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else None


@dataclass
class ServedModel:
    """A model folder with its decision (``threshold.json``), on ``compute``."""

    folder: Path
    saved: SavedModel
    decision: Decision
    compute: Compute
    info: dict

    @classmethod
    def load(cls, path: Path, entry: Entry | None = None, device: str = "auto", runtime: str = "onnxruntime") -> "ServedModel":
        folder = model_folder(path)
        saved, decision = load_model(folder), load_decision(folder)
        if decision is None:
            raise DefectsegError(f"{folder}: no threshold.json beside the model (run the evaluate stage, or serve the shipped release/ folder)")
        card = json.loads((folder / CARD).read_text()) if (folder / CARD).exists() else {}
        architecture = saved.metadata["architecture"]["model"]
        loss = saved.metadata.get("loss", {}).get("name")
        info = {
            "model": architecture,
            "arm": card.get("arm") or (f"{architecture}-{loss}" if loss else architecture),
            "run": card.get("run"),
            "name": entry.name if entry else None,
            "version": entry.version if entry else None,
            "stage": entry.stage if entry else None,
            "commit": entry.commit if entry else _commit_of(folder),
        }
        saved = with_runtime(saved, folder, runtime)
        info["runtime"] = "onnxruntime" if isinstance(saved.model, OnnxModel) else "torch"
        # the arithmetic of `defectseg predict` (fp32, channels-last), so both give the same masks
        return cls(folder, saved, decision, Compute(pick_device(device, "--device"), channels_last=True), info)

    def predict(self, originals: list[np.ndarray]) -> list[Prediction]:
        """Masks for decoded grayscale images of any sizes, computed as ``defectseg predict`` computes them."""
        batch = image_array([model_input(self.saved, original) for original in originals])
        probabilities, heads = predict_outputs(self.saved, batch, len(originals), self.compute, self.decision.flip_tta)
        return [
            Prediction(*predicted_mask(original, probability, head, self.decision))
            for original, probability, head in zip(originals, probabilities, per_image_heads(heads, len(originals)))
        ]
