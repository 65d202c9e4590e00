"""One training run of the comparison: a (loss, seed) pair, from preprocessed data to saved model."""

import contextlib
from pathlib import Path

from dvclive import Live

from defectseg.dataset import load_split
from defectseg.distributed import join, leave
from defectseg.losses import build_loss
from defectseg.params import Params
from defectseg.saved_model import save_model
from defectseg.sources import sha256_of
from defectseg.inference import pick_device
from defectseg.training import RunSpec, fit


def train_run(params: Params, loss_name: str, seed: int, data_dir: Path, model_dir: Path, live_dir: Path) -> dict:
    """Train the run, write ``model_dir/{model.pt,model.json}``, and return a summary."""
    data_dir, model_dir = Path(data_dir), Path(model_dir)
    train_split = load_split(data_dir / "train.npz")
    val_split = load_split(data_dir / "val.npz")
    loss_settings = getattr(params.losses, loss_name).model_dump()
    spec = RunSpec(
        params.train,
        loss_name,
        loss_settings,
        seed,
        sha256_of(data_dir / "train.npz") + sha256_of(data_dir / "val.npz"),
    )
    world = join(pick_device(params.train.device, "train.device"))
    try:
        logger = Live(dir=str(live_dir), dvcyaml=None, save_dvc_exp=False) if world.is_main else contextlib.nullcontext()
        with logger as live:
            result = fit(spec, build_loss(loss_name, params.losses), train_split, val_split, model_dir / "last.pt", live, world)
            best = result["best"]
            if world.is_main:
                live.summary["best/epoch"] = best["epoch"]
                live.summary["best/val_iou"] = best["val_iou"]
    finally:
        leave(world)
    summary = {"best_epoch": best["epoch"], "best_val_iou": best["val_iou"], "epochs": len(result["history"]), "rank": world.rank}
    if not world.is_main:
        return summary
    height, width = train_split.images.shape[1:]
    save_model(
        model_dir,
        best["weights"],
        params.train,
        result["normalization"],
        {
            "input_size": [int(height), int(width)],
            "loss": {"name": loss_name, **loss_settings},
            "seed": seed,
            "best_epoch": best["epoch"],
            "best_val_iou": best["val_iou"],
        },
    )
    return summary
