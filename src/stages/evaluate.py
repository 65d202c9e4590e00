"""Stage evaluate: choose the decision on val, then measure one run on train, val and test at each image's own size."""

from pathlib import Path

from defectseg.evaluation import evaluate_run
from defectseg.params import load_params
from defectseg.stage import run_arguments, run_name, run_stage


def main() -> None:
    args = run_arguments(__doc__)
    params = load_params()
    name = run_name(args.loss, args.seed)
    result = evaluate_run(
        Path("models") / name,
        Path("data/preprocessed"),
        Path("data/prepared/manifest.csv"),
        params.preprocess.mask_threshold,
        params.evaluate,
        metrics_path=Path("metrics/runs") / f"{name}.json",
        out_dir=Path("evaluation") / name,
    )
    test = result["test"]
    print(f"{name}: threshold {result['threshold']:.2f}, test IoU {test['iou']:.4f}, recall {test['detection_recall']:.3f}, false alarms {test['false_alarm_rate']}")


if __name__ == "__main__":
    run_stage(main)
