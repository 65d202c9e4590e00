"""A named comparison (``defectseg compare``): the pipeline as a DVC experiment, its report kept in ``reports/NAME``.

Runs ``dvc exp run --temp -n NAME`` with the overrides of the config files (later ones win)
and the data source as ``-S`` flags, so the experiment stays in the repository: ``dvc exp
show`` lists it, ``dvc exp apply NAME`` brings its trained models (and their decision files)
out of the DVC cache for ``defectseg predict --model models/<run>``, and ``dvc exp push``
shares it. Then copies its report, figures, overlays, headline.json and comparison.json into
``reports/NAME/`` with a provenance.json (date, machine, commit, wall time, the stages' code
hashes from the experiment's dvc.lock), and rewrites the result tables of the README and
docs/ that cite a report (``results_tables.write_tables``).

``remake`` re-makes the report in ``reports/NAME`` after a change to the report's own code:
with the same configs every train and evaluate stage is restored from DVC's run-cache, the
experiment is named ``NAME-remade-<time>``, and provenance.json keeps the earlier one's date,
commit and wall time as the measurement under ``measured``. It stops without writing when a
train or evaluate stage's outputs differ from the earlier experiment's (a stage ran anew:
that is a new measurement).
"""

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from defectseg.cli.experiments import experiment_ref, files_in, read_file, run_experiment
from defectseg.cli.results_tables import provenance, remeasured_stages, write_tables
from defectseg.cli.ship_comparison import remember
from defectseg.errors import DefectsegError
from defectseg.foundation.atomic import atomic_dir

REPORT_FILES = ("reports/report.md", "metrics/headline.json", "metrics/comparison.json")
REPORT_FOLDERS = ("reports/figures", "reports/overlays")


@dataclass(frozen=True)
class Comparison:
    """What ``compare`` made: the experiment, its report folder, its wall time and the documents it refreshed."""

    experiment: str
    folder: Path
    seconds: float
    refreshed: list[Path]

    @property
    def table(self) -> dict:
        return json.loads((self.folder / "comparison.json").read_text())


def layered_overrides(configs: list[Path], data: str | None) -> dict:
    """The dotted-key overrides of ``configs`` (later ones win), with ``data`` as ``data.source`` when given."""
    overrides = {}
    for config in configs:
        try:
            layer = yaml.safe_load(config.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise DefectsegError(f"{config}: cannot read it as YAML ({exc})") from None
        if not isinstance(layer, dict):
            raise DefectsegError(f"{config}: expected a mapping of dotted params keys to values")
        overrides.update(layer)
    if data is not None:
        overrides["data.source"] = data if data == "mtd" else str(Path(data).resolve())
    return overrides


def compare(configs: list[Path], data: str | None, name: str | None = None, remake: str | None = None, repo: Path = Path(".")) -> Comparison:
    """Run the comparison of ``configs`` as the experiment ``name`` (or re-make ``reports/<remake>``)."""
    overrides = layered_overrides(configs, data)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()
    date = time.strftime("%Y-%m-%d")
    folder = remake or name or f"compare-{time.strftime('%Y%m%d-%H%M%S')}"
    out_dir = repo / "reports" / folder
    measured = None
    if remake:
        if not (out_dir / "provenance.json").is_file():
            raise DefectsegError(f"{out_dir / 'provenance.json'}: not found: --remake re-makes a report compare wrote")
        earlier = json.loads((out_dir / "provenance.json").read_text())
        measured = earlier.get("measured", earlier)
    experiment = f"{folder}-remade-{time.strftime('%Y%m%d-%H%M%S')}" if remake else folder
    start = time.perf_counter()
    ref = run_experiment(experiment, overrides, repo)
    elapsed = time.perf_counter() - start
    lock_text = read_file(ref, "dvc.lock", repo).decode()
    if measured:
        measured_lock = yaml.safe_load(read_file(experiment_ref(measured["experiment"], repo), "dvc.lock", repo))
        if rerun := remeasured_stages(yaml.safe_load(lock_text), measured_lock):
            raise DefectsegError(f"{experiment}: {', '.join(rerun)} gave other outputs than {measured['experiment']}; a new measurement: use --name")
    with atomic_dir(out_dir) as out:
        paths = [*REPORT_FILES, *(path for folder_path in REPORT_FOLDERS for path in files_in(ref, folder_path, repo))]
        for path in paths:
            target = out / Path(path).relative_to(Path(path).parts[0])
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(read_file(ref, path, repo))
        record = provenance(lock_text, read_file(ref, "params.yaml", repo).decode(), commit, date, elapsed, [str(c) for c in configs], experiment, measured)
        (out / "provenance.json").write_text(json.dumps(record, indent=1) + "\n")
    remember(experiment, repo)
    return Comparison(experiment, out_dir, elapsed, write_tables(repo))


def summary_lines(comparison: Comparison) -> list[str]:
    """The headline, the verdicts and convergence of ``comparison``, as the command prints them."""
    table = comparison.table
    lines = [f"{comparison.experiment}: {comparison.seconds / 60:.1f} min wall time, {table['folds']} fold(s), every figure at each image's own size"]
    for arm, row in table["arms"].items():
        per_class = json.dumps({name: round(value, 3) for name, value in row["per_class_iou"].items()})
        lines.append(
            f"{arm:34s} IoU {row['iou']:.3f} {row['iou_interval']}  image IoU {row['mean_image_iou']:.3f}  "
            f"recall {row['detection_recall']:.3f}  false alarms {row['false_alarm_rate']:.3f}  per class {per_class}"
        )
    lines += [verdict["verdict"] for verdict in table["verdicts"]]
    late = [name for name, run in table["runs"].items() if not run["converged"]]
    lines.append(f"{len(table['runs']) - len(late)} of {len(table['runs'])} runs converged" + (f"; still learning: {', '.join(late)}" if late else ""))
    lines.append(f"report: {comparison.folder}/report.md; models: dvc exp apply {comparison.experiment}, then defectseg predict --model models/<run>")
    lines.append(f"result tables refreshed in: {', '.join(map(str, comparison.refreshed)) or 'none (no document cites this report yet)'}")
    return lines
