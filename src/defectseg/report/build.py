"""The report stage: the comparison of models and losses, as DVC metrics and a Markdown page.

Reads every (model, loss, seed, fold) run named in ``compare``, pools each (model, loss)
arm's test predictions over folds and seeds (``pooled``), and writes:
- ``headline.json``: per arm, pooled IoU, recall and false alarms with intervals, the one
  DVC metric of the pipeline, so ``dvc exp show`` and ``dvc metrics diff`` lead with it;
- ``comparison.json``: every pooled figure, per class and per fold, the verdicts (pooled and
  per defect class), which arm to use for each class, each run's convergence and each arm's
  training cost;
- ``report.md`` with figures and overlays beside it, readable on GitHub as is.
"""

import json
import shutil
from pathlib import Path

from defectseg.config.params import Params
from defectseg.config.runs import matrix_runs
from defectseg.data.manifest import read_groups
from defectseg.foundation.atomic import atomic_dir, write_json, write_text
from defectseg.report.comparison import comparison, headline
from defectseg.report.figures import plot_pr, plot_training
from defectseg.report.markdown import render_markdown
from defectseg.report.run_outputs import load_run


def build_report(
    params: Params, metrics_dir: Path, evaluation_dir: Path, live_dir: Path, data_summary_path: Path, report_dir: Path, outputs_dir: Path, manifest_path: Path | None = None
) -> dict:
    """Write ``headline.json`` (the DVC metric), ``comparison.json`` (every pooled figure) and the
    report folder; return the comparison. The bootstraps resample the groups of the manifest at
    ``manifest_path`` (None: each image is its own group)."""
    outputs = [load_run(run, metrics_dir, evaluation_dir, live_dir) for run in matrix_runs(params.compare)]
    groups = None if manifest_path is None else read_groups(manifest_path)
    table = comparison(outputs, params, groups)
    shown = [o for o in outputs if o.run.seed == params.compare.seeds[0] and o.run.fold == 0]
    data_summary = json.loads(Path(data_summary_path).read_text())
    report_dir = Path(report_dir)
    with atomic_dir(report_dir / "figures") as figures:
        plot_training(shown, figures / "training_curves.png")
        plot_pr(shown, figures / "pr_curves.png")
    with atomic_dir(report_dir / "overlays") as overlays:
        for output in shown:
            if output.overlays.is_dir():
                shutil.copytree(output.overlays, overlays / output.run.name)
    write_text(report_dir / "report.md", render_markdown(table, shown, params, data_summary))
    write_json(Path(outputs_dir) / "comparison.json", table)
    write_json(Path(outputs_dir) / "headline.json", headline(table))
    return table
