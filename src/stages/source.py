"""Stage source (always run): fingerprint the raw data named by ``data.source`` into ``data/source.json``."""

from pathlib import Path

from defectseg.config.data import load_data_params
from defectseg.data.source_fingerprint import record_source
from defectseg.foundation.stage import run_stage


def main() -> None:
    print(record_source(load_data_params(), Path("data/source.json")))


if __name__ == "__main__":
    run_stage(main)
