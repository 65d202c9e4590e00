"""Stage report: the comparison of models and losses as DVC metrics and reports/report.md."""

from pathlib import Path

from defectseg.config.params import load_params
from defectseg.foundation.stage import run_stage
from defectseg.report.build import build_report


def main() -> None:
    params = load_params()
    table = build_report(
        params,
        metrics_dir=Path("metrics/runs"),
        evaluation_dir=Path("evaluation"),
        live_dir=Path("dvclive"),
        data_summary_path=Path("data/prepared/summary.json"),
        manifest_path=Path("data/prepared/manifest.csv"),
        report_dir=Path("reports"),
        outputs_dir=Path("metrics"),
    )
    for arm, row in table["arms"].items():
        print(f"{arm}: IoU {row['iou']:.4f} {row['iou_interval']}, recall {row['detection_recall']:.3f}, false alarms {row['false_alarm_rate']}")
    for verdict in table["verdicts"]:
        print(verdict["verdict"])
    print("wrote reports/report.md")


if __name__ == "__main__":
    run_stage(main)
