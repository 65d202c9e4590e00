"""Stage evaluate: choose the decision on a run's val, then measure its train, val and test at each image's own size."""

from pathlib import Path

from defectseg.config.evaluate import load_evaluate_params
from defectseg.config.preprocess import load_preprocess_params
from defectseg.config.runs import run_arguments
from defectseg.evaluation.evaluate import evaluate_run
from defectseg.foundation.stage import run_stage


def main() -> None:
    run = run_arguments(__doc__)
    result = evaluate_run(
        Path("models") / run.name,
        Path("data/preprocessed"),
        Path("data/prepared/manifest.csv"),
        run.fold,
        load_preprocess_params().mask_threshold,
        load_evaluate_params(),
        metrics_path=Path("metrics/runs") / f"{run.name}.json",
        out_dir=Path("evaluation") / run.name,
    )
    test = result["test"]
    print(f"{run.name}: threshold {result['threshold']:.2f}, test IoU {test['iou']:.4f}, recall {test['detection_recall']:.3f}, false alarms {test['false_alarm_rate']}")


if __name__ == "__main__":
    run_stage(main)
