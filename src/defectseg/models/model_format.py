"""What training writes: a model folder's file names and ``save_model`` (loading, ensembles and decisions: ``models.saved_model``).

The train stage imports this module, not ``saved_model``, so an edit to how models are loaded or
combined re-runs no training.
"""

from pathlib import Path

from defectseg.config.models import ModelSection
from defectseg.data.dataset import Normalization
from defectseg.foundation.atomic import write_json
from defectseg.models.checkpoint import save_checkpoint

MODEL_FORMAT = "defectseg-model-1"
ENSEMBLE = "ensemble"
WEIGHTS = "model.pt"
METADATA = "model.json"
THRESHOLD = "threshold.json"


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
