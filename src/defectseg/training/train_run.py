"""One training run of the comparison: a (model, loss, seed, fold), from preprocessed data to saved model."""

import contextlib
import hashlib
import sys
from pathlib import Path

from dvclive import Live

from defectseg.config.training_params import TrainingParams
from defectseg.config.runs import Run
from defectseg.data.dataset import load_fold, preprocessed_fingerprint
from defectseg.foundation.atomic import remove_stale_temporaries, write_json
from defectseg.foundation.threads import job_slot
from defectseg.models.compute import pick_device
from defectseg.models.model_format import save_model
from defectseg.training.code_fingerprint import module_hashes
from defectseg.training.distributed import join, leave
from defectseg.training.loop import fit
from defectseg.training.losses import build_loss
from defectseg.training.run_spec import RunSpec

RESUME_STATE = "last.pt"
# wall and CPU minutes of the run, not a DVC output: they differ from run to run, and DVC's
# run-cache (a teammate's identical run reused) needs identical inputs to give identical outputs
COST = "cost.json"


def train_run(params: TrainingParams, run: Run, pairs_dir: Path, manifest_path: Path, model_dir: Path, live_dir: Path, scratch_dir: Path) -> dict:
    """Train on the run's fold (its train part; its val part picks the best epoch), write
    ``model_dir/{model.pt,model.json}``, and return a summary.

    ``scratch_dir`` holds what is not a result, outside the stage's outputs (so neither DVC's
    hashes nor a stage that depends on the ``models`` folder see it): the run's wall minutes
    (``cost.json``) and its resume state (``last.pt``), which lives only while the run is
    incomplete: it is deleted once the final model is saved, so a re-run (a code change, ``dvc repro -f``)
    trains from scratch. Its code fingerprint covers this module's import closure, every
    package module the train stage runs. Temporaries that a killed write left in
    ``model_dir`` are removed first.
    """
    model_dir, scratch_dir = Path(model_dir), Path(scratch_dir)
    for stale in remove_stale_temporaries(model_dir):
        print(f"removed {stale}, left by an interrupted write", file=sys.stderr)
    fold = load_fold(pairs_dir, manifest_path, run.fold)
    train_split, val_split = fold["train"], fold["val"]
    loss_settings = getattr(params.losses, run.loss).model_dump()
    model_settings = getattr(params.models, run.model)
    roles = hashlib.sha256(" ".join([*train_split.ids, "|", *val_split.ids]).encode()).hexdigest()
    code = module_hashes(Path(__file__))
    train_params = params.train_for(run.model)
    spec = RunSpec(train_params, run.model, model_settings, run.loss, loss_settings, run.seed, preprocessed_fingerprint(pairs_dir) + roles, code)
    world = join(pick_device(train_params.device, "train.device"))
    try:
        logger = Live(dir=str(live_dir), dvcyaml=None, save_dvc_exp=False) if world.is_main else contextlib.nullcontext()
        with job_slot(), logger as live:
            result = fit(spec, build_loss(run.loss, params.losses), train_split, val_split, scratch_dir / RESUME_STATE, live, world)
            best = result["best"]
            if world.is_main:
                live.summary["best/epoch"] = best["epoch"]
                live.summary["best/val_iou"] = best["val_iou"]
                live.summary["cost/train_tflop"] = round(result["flops"] / 1e12, 3)
    finally:
        leave(world)
    summary = {"best_epoch": best["epoch"], "best_val_iou": best["val_iou"], "epochs": len(result["history"]), "writer": world.is_main}
    if not world.is_main:
        return summary
    # how inference resizes a new tile (inference.model_input): to the one input size, or by the scale
    geometry = {"preprocess": params.preprocess.model_dump(mode="json")}
    if params.preprocess.geometry == "squash":
        geometry["input_size"] = list(params.preprocess.height_width)
    save_model(
        model_dir,
        best["weights"],
        run.model,
        model_settings,
        result["normalization"],
        {
            **geometry,
            "loss": {"name": run.loss, **loss_settings},
            "seed": run.seed,
            "fold": run.fold,
            "best_epoch": best["epoch"],
            "best_val_iou": best["val_iou"],
            "threads": result["threads"],
        },
    )
    (scratch_dir / RESUME_STATE).unlink(missing_ok=True)
    write_json(scratch_dir / COST, {"train_minutes": round(result["seconds"] / 60, 2), "train_cpu_minutes": round(result["cpu_seconds"] / 60, 2),
                                  "device": world.device.type, "threads": result["threads"]})  # fmt: skip
    return {**summary, "minutes": result["seconds"] / 60}
