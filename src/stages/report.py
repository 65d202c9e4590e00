"""Stage report: the loss comparison as DVC metrics and reports/report.md."""

from pathlib import Path

from defectseg.params import load_params
from defectseg.report import build_report
from defectseg.stage import run_stage


def main() -> None:
    params = load_params()
    table = build_report(
        params,
        metrics_dir=Path("metrics/runs"),
        evaluation_dir=Path("evaluation"),
        live_dir=Path("dvclive"),
        data_summary_path=Path("data/prepared/summary.json"),
        report_dir=Path("reports"),
        comparison_path=Path("metrics/comparison.json"),
    )
    for loss, row in table.items():
        print(f"{loss}: test IoU {row['test_iou']:.4f}")
    print("wrote reports/report.md")


if __name__ == "__main__":
    run_stage(main)
