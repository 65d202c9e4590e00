"""Stage train: fit one (model, loss, seed, fold) run of the comparison matrix."""

from pathlib import Path

from defectseg.config.runs import run_arguments
from defectseg.config.training_params import load_training_params
from defectseg.foundation.stage import run_stage
from defectseg.training.distributed import launched_by_torchrun, relaunch_under_torchrun
from defectseg.training.train_run import train_run


def main() -> None:
    run = run_arguments(__doc__)
    params = load_training_params()
    train = params.train_for(run.model)
    if (train.processes > 1 or train.nodes > 1) and not launched_by_torchrun():
        relaunch_under_torchrun(train.processes, train.nodes, run.name)
    summary = train_run(
        params, run, Path("data/preprocessed"), Path("data/prepared/manifest.csv"), Path("models") / run.name, Path("dvclive") / run.name, Path("runs") / run.name
    )
    if summary["writer"]:
        print(f"{run.name}: best val IoU {summary['best_val_iou']:.4f} at epoch {summary['best_epoch']}; trained in {summary['minutes']:.1f} min")


if __name__ == "__main__":
    run_stage(main)
