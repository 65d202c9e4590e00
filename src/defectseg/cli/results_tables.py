"""Result tables in the Markdown docs, written from the reports they cite, never typed.

A document marks a table with a pair of comments naming a report folder::

    <!-- results: reports/mtd-cv-losses -->
    ... (written by ``defectseg tables``) ...
    <!-- /results -->

or ``<!-- results: reports/NAME history -->`` for a table kept as the record of an earlier
configuration, which is never to be refreshed.

``write_tables`` fills every such block from the folder's ``comparison.json`` (a
comparison's report) or ``levers.json`` (``bench/levers.py``'s val-only lever runs) and its
``provenance.json`` (when, on what machine, at which commit, and the MD5 of the code that
ran, as ``dvc.lock`` records it). A block whose stage code has changed since its
run is marked **stale** where it is shown; a history block says instead that it is kept as the
record of its commit and names the code changed since. ``check_tables`` lists the blocks that differ
from what would be written, so a test catches a hand-edited or outdated table.
"""

import hashlib
import itertools
import json
import os
import platform
import re
from pathlib import Path

import yaml

from defectseg.config.compare import CompareParams
from defectseg.config.params import parse_params
from defectseg.errors import DefectsegError
from defectseg.foundation.atomic import write_text

BLOCK = re.compile(r"(?P<open><!-- results: (?P<folder>[^ ]+)(?P<history> history)? -->\n)(?P<body>.*?)(?P<close><!-- /results -->)", re.DOTALL)
CLASSES = ("blowhole", "break", "crack", "fray", "uneven")


def _defect_image(row: dict, suffix: str):
    """An arm's defect-image IoU (``suffix`` "_interval": its interval); reports written before
    2026-12-07 call it ``defect_tiles_iou``, and the earliest have neither."""
    return row.get(f"defect_image_iou{suffix}", row.get(f"defect_tiles_iou{suffix}"))


def pipeline_stages(compare: CompareParams) -> set[str]:
    """The names of the stages a pipeline with this ``compare`` section has (``dvc.yaml``'s matrix)."""
    arms = {f"{model}-{loss}-{seed}-{fold}" for model, loss, seed, fold in itertools.product(compare.models, compare.losses, compare.seeds, compare.folds)}
    return {"prepare", "preprocess", "report"} | {f"{kind}@{arm}" for kind in ("train", "evaluate") for arm in arms}


def code_hashes(lock: dict, stages: set[str]) -> dict[str, str]:
    """The MD5 of every ``src/`` file the ``stages`` of a ``dvc.lock`` depend on, as DVC recorded it.

    Only the named stages: a lock also carries entries of stages the pipeline no longer has
    (other arms, older matrices), recorded with older code."""
    hashes = {}
    for name, stage in lock.get("stages", {}).items():
        if name not in stages:
            continue
        for dep in stage.get("deps", []):
            if dep["path"].startswith("src/") and "md5" in dep:
                hashes[dep["path"]] = dep["md5"]
    return dict(sorted(hashes.items()))


PRESENTING_STAGES = ("source", "report", "ship")


def remeasured_stages(lock: dict, measured_lock: dict) -> list[str]:
    """The stages whose outputs in ``lock`` differ from those in ``measured_lock``: non-empty
    when a re-made report measured anew. ``PRESENTING_STAGES`` are left out: source always runs,
    and the report and the ship stage (its model card) only present what the others measured.

    Entries a ``dvc.lock`` carries over from the workspace for stages outside the experiment
    compare equal unless the workspace's lock changed in between; then this errs on the safe
    side and names them."""
    def outs(stage: dict) -> list:
        return sorted((o["path"], o.get("md5")) for o in stage.get("outs", []))

    before = measured_lock.get("stages", {})
    return sorted(
        name
        for name, stage in lock.get("stages", {}).items()
        if name not in PRESENTING_STAGES and name in before and outs(stage) != outs(before[name])
    )


def machine() -> str:
    """The CPU model and core count of this machine, as the tables name it."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        model = names[0] if names else model
    return f"{model}, {os.cpu_count()} cores"


def provenance(
    lock_text: str, params_text: str, commit: str, date: str, wall_seconds: float | None, configs: list[str], experiment: str, measured: dict | None = None
) -> dict:
    """What ``provenance.json`` holds for one report. ``measured``: for a report re-made from
    DVC's run-cache (no stage but the report re-ran), the earlier provenance whose runs it
    restored, so that the date, commit and wall time of the measurement stay on record.
    ``params_text``: the experiment's params.yaml, whose ``compare`` names its stages."""
    record = {
        "experiment": experiment,
        "commit": commit,
        "date": date,
        "machine": machine(),
        "wall_seconds": None if wall_seconds is None else round(wall_seconds),
        "configs": configs,
        "code": code_hashes(yaml.safe_load(lock_text), pipeline_stages(parse_params(yaml.safe_load(params_text)).compare)),
    }
    if measured is not None:
        record["measured"] = {key: measured[key] for key in ("experiment", "commit", "date", "machine", "wall_seconds")}
    return record


def changed_code(code: dict[str, str], root: Path) -> list[str]:
    """The recorded ``src/`` files whose content differs now (or that are gone)."""
    changed = []
    for path, md5 in code.items():
        current = root / path
        if not current.is_file() or hashlib.md5(current.read_bytes()).hexdigest() != md5:
            changed.append(path)
    return changed


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _interval(pair) -> str:
    return "" if not pair or pair[0] is None else f" [{pair[0]:.3f}, {pair[1]:.3f}]"


def _provenance_line(record: dict | None, table: dict, root: Path, history: bool) -> str:
    first = next(iter(table["arms"].values()))
    if "groups" in first:
        counted = f"{first['groups']} groups ({first['images']} images)"
        design = f"{table['folds']}-fold cross-validation by group, pooled over all {counted}" if table["folds"] > 1 else f"one split, {counted} tested"
    else:
        design = f"{table['folds']}-fold cross-validation, pooled over all {first['images']} images" if table["folds"] > 1 else f"one split, {first['images']} test images"
    if record is None:
        return f"*{design} ({first['defect_images']} with defects). No provenance recorded: measured before reports kept their commit and code hashes.*"
    measured = record.get("measured", record)
    minutes = "" if measured["wall_seconds"] is None else f", {measured['wall_seconds'] / 60:.1f} min wall time"
    remade = (
        f"; report re-made {record['date']} at commit `{record['commit'][:10]}` from DVC's run-cache, experiment `{record['experiment']}`"
        if "measured" in record
        else ""
    )
    line = (
        f"*{design} ({first['defect_images']} with defects); every figure at each image's own size. "
        f"Measured {measured['date']} on {measured['machine']}{minutes}, commit `{measured['commit'][:10]}`"
        + (f", experiment `{measured['experiment']}`" if measured["experiment"] else "")
        + remade
        + ".*"
    )
    return line + _stale_note(changed_code(record["code"], root), history, root)


def file_hashes(paths: list[Path], root: Path) -> dict[str, str]:
    """The MD5 of each file, keyed by its path relative to ``root`` (as ``dvc.lock`` keys deps)."""
    return {path.relative_to(root).as_posix(): hashlib.md5(path.read_bytes()).hexdigest() for path in sorted(paths)}


def _stale_note(changed: list[str], history: bool, root: Path) -> str:
    """What a block says under its table when the code it ran has changed since: the edited files by
    name, and the files no longer where the run found them (moved or removed) by count."""
    if not changed:
        return ""
    edited = [Path(p).name for p in changed if (root / p).is_file()]
    gone = [Path(p).name for p in changed if not (root / p).is_file()]
    parts = [f"the code changed since ({', '.join(edited)})"] if edited else []
    if gone:
        shown = ", ".join(gone[:4]) + (", ..." if len(gone) > 4 else "")
        parts.append(f"{len(gone)} of its modules have since moved or been removed ({shown})")
    cause = "; ".join(parts)
    if history:
        return f"\n\n**History**: kept as the record of what ran at the commit(s) above, not refreshed; {cause}."
    return f"\n\n**Stale**: made by earlier code: {cause}; re-run it to refresh these figures."


def render_levers(folder: Path, root: Path, history: bool = False) -> str:
    """The lever table of ``bench/levers.py`` (val split only) for ``levers.json`` in ``folder``."""
    record = json.loads((root / folder / "levers.json").read_text())
    lines = [
        "| lever | val pooled IoU | mean image IoU | recall at 5% false alarms | image AUROC | crack | blowhole | uneven | break | fray "
        "| IoU / recall without flip TTA | IoU / recall with flip TTA | best val IoU in training | converged | training min |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for row in record["rows"]:
        converged = "yes" if row["converged"] else f"no (+{row['tail_gain']:.3f})" if row["tail_gain"] is not None else "n/a"
        classes = " | ".join(_number(row.get(name)) for name in ("crack", "blowhole", "uneven", "break", "fray"))
        lines.append(
            f"| {row['lever']} | {row['val_iou']:.3f} | {_number(row.get('mean_image_iou'))} | {_number(row['recall_at_fa'])} | {_number(row['image_auroc'])} | {classes} "
            f"| {row['val_iou_without_tta']:.3f} / {_number(row['recall_at_fa_without_tta'])} "
            f"| {_number(row.get('val_iou_with_tta'))} / {_number(row.get('recall_at_fa_with_tta'))} "
            f"| {row['best_epoch_val_iou']:.3f} | {converged} | {row['train_minutes']:.1f} |"
        )
    runs = sorted({(row["date"], row["machine"], row["commit"][:10]) for row in record["rows"]})
    measured = "; ".join(f"{date} on {where}, commit `{commit}`" for date, where, commit in runs)
    lines += ["", f"*Val split only (the test split was not read), every figure at each image's own size. Measured {measured}.*"]
    changed = sorted({path for row in record["rows"] for path in changed_code(row["code"], root)})
    return "\n".join(lines) + _stale_note(changed, history, root) + "\n"


def render(folder: Path, root: Path, history: bool = False) -> str:
    """The Markdown block for the report in ``folder`` (relative to ``root``); ``history``: a
    table kept as an earlier configuration's record (see the module's docstring)."""
    if (root / folder / "levers.json").is_file():
        return render_levers(folder, root, history)
    table = json.loads((root / folder / "comparison.json").read_text())
    record_path = root / folder / "provenance.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else None
    lines = [
        "| arm | pooled IoU [95% CI] | defect-image IoU [95% CI] | mean image IoU | recall [95% CI] | false alarms [95% CI] | image AUROC | recall at FA budget "
        "| crack IoU / recall | blowhole IoU / recall | runs converged |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    runs = table.get("runs", {})
    for arm, row in table["arms"].items():
        arm_runs = [run for name, run in runs.items() if name.startswith(f"{arm}-seed")]
        converged = f"{sum(r['converged'] for r in arm_runs)} of {len(arm_runs)}" if arm_runs else "not recorded"
        lines.append(
            f"| {arm} | {row['iou']:.3f}{_interval(row.get('iou_interval'))} "
            f"| {_number(_defect_image(row, ''))}{_interval(_defect_image(row, '_interval'))} | {_number(row['mean_image_iou'])} "
            f"| {row['detection_recall']:.3f}{_interval(row.get('detection_recall_interval'))} "
            f"| {_number(row['false_alarm_rate'])}{_interval(row.get('false_alarm_rate_interval'))} "
            f"| {_number(row['image_auroc'])} | {_number(row['recall_at_false_alarm_rate'])} "
            f"| {_class_figures(row, 'crack')} | {_class_figures(row, 'blowhole')} | {converged} |"
        )
    lines += ["", *(f"- {v['verdict']}" for v in table["verdicts"])] if table["verdicts"] else []
    lines += ["", _provenance_line(record, table, root, history), ""]
    return "\n".join(lines)


def _class_figures(row: dict, name: str) -> str:
    """One class's IoU and image recall ("n/a" where the report predates per-class recall)."""
    return f"{_number(row['per_class_iou'].get(name))} / {_number(row.get('per_class_recall', {}).get(name))}"


def _block_body(match: re.Match, root: Path, document: Path) -> str:
    """What a results block of ``document`` should hold: its report rendered."""
    folder = Path(match.group("folder"))
    if not (root / folder / "comparison.json").is_file() and not (root / folder / "levers.json").is_file():
        raise DefectsegError(f"{document}: a results block cites {folder}, which holds no report (comparison.json): make it, or cite another")
    return render(folder, root, bool(match.group("history")))


def _rewritten(text: str, root: Path, document: Path) -> str:
    return BLOCK.sub(lambda m: m.group("open") + _block_body(m, root, document) + m.group("close"), text)


def documents(root: Path) -> list[Path]:
    """The Markdown files that may hold result blocks: the README and every page of ``docs/``."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def write_tables(root: Path = Path(".")) -> list[Path]:
    """Rewrite every result block of the documents; return the files that changed."""
    changed = []
    for path in documents(root):
        if not path.is_file():
            continue
        text = path.read_text()
        fresh = _rewritten(text, root, path)
        if fresh != text:
            write_text(path, fresh)
            changed.append(path)
    return changed


def check_tables(root: Path = Path(".")) -> list[str]:
    """``file: report`` for each result block that differs from what ``write_tables`` would write."""
    stale = []
    for path in documents(root):
        if not path.is_file():
            continue
        for match in BLOCK.finditer(path.read_text()):
            if match.group("body") != _block_body(match, root, path):
                stale.append(f"{path.relative_to(root)}: {match.group('folder')}")
    return stale
