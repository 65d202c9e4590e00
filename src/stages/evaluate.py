"""Stage evaluate: choose the threshold on val, then measure one run on train, val and test."""

from pathlib import Path

from defectseg.evaluation import evaluate_run
from defectseg.params import load_params
from defectseg.stage import run_arguments, run_stage
from defectseg.train_run import run_name


def main() -> None:
    args = run_arguments(__doc__)
    params = load_params()
    name = run_name(args.loss, args.seed)
    result = evaluate_run(
        Path("models") / name,
        Path("data/preprocessed"),
        params.evaluate,
        metrics_path=Path("metrics/runs") / f"{name}.json",
        out_dir=Path("evaluation") / name,
    )
    print(f"{name}: threshold {result['threshold']:.2f}, test IoU {result['test']['iou']:.4f}, train IoU {result['train']['iou']:.4f}")


if __name__ == "__main__":
    run_stage(main)
