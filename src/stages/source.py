"""Stage source (always run): check the whole of ``params.yaml``, then fingerprint the raw data
named by ``data.source`` (and the folders of ``data/extra-sources.txt``) into ``data/source.json``.

Every ``dvc repro`` runs this stage first, so a wrong key or type in any section fails at once,
before a data stage runs, while each later stage depends only on the schema of the sections it
reads (its outputs change only with the data, so nothing after it re-runs for a schema change)."""

from pathlib import Path

from defectseg.config.params import load_params
from defectseg.data.extra_sources import read_extra_sources
from defectseg.data.source_fingerprint import record_source
from defectseg.foundation.stage import run_stage


def main() -> None:
    print(record_source(load_params().data, Path("data/source.json"), read_extra_sources()))


if __name__ == "__main__":
    run_stage(main)
