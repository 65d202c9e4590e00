"""Stage evaluate: choose the threshold on val, then measure one run on train, val and test."""

import argparse
import typing
from pathlib import Path

from defectseg.evaluation import evaluate_run
from defectseg.params import LossName, load_params
from defectseg.stage import run_stage
from defectseg.train_run import run_name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--loss", required=True, choices=typing.get_args(LossName))
    parser.add_argument("--seed", type=int, required=True)
    args = parser.parse_args()
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
