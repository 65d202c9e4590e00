"""Stage train: fit the model for one (loss, seed) of the comparison matrix."""

from pathlib import Path

from defectseg.distributed import launched_by_torchrun, relaunch_under_torchrun
from defectseg.params import load_params
from defectseg.stage import run_arguments, run_name, run_stage
from defectseg.train_run import train_run


def main() -> None:
    args = run_arguments(__doc__)
    params = load_params()
    if params.train.processes > 1 and not launched_by_torchrun():
        relaunch_under_torchrun(params.train.processes)
    name = run_name(args.loss, args.seed)
    summary = train_run(
        params, args.loss, args.seed, Path("data/preprocessed"), Path("models") / name, Path("dvclive") / name
    )
    if summary["rank"] == 0:
        print(f"{name}: best val IoU {summary['best_val_iou']:.4f} at epoch {summary['best_epoch']}")


if __name__ == "__main__":
    run_stage(main)
