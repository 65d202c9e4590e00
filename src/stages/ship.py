"""Stage ship: the model the report recommends, with its model card, as the folder the registry's artifact names."""

from pathlib import Path

from defectseg.config.params import load_params
from defectseg.deploy.ship import ship_model
from defectseg.foundation.stage import run_stage


def main() -> None:
    card = ship_model(
        load_params(),
        comparison_path=Path("metrics/comparison.json"),
        metrics_dir=Path("metrics/runs"),
        models_dir=Path("models"),
        summary_path=Path("data/prepared/summary.json"),
        out_dir=Path("release"),
    )
    print(f"shipped {card['run']} ({card['arm']}, the report's recommendation) to release/")


if __name__ == "__main__":
    run_stage(main)
