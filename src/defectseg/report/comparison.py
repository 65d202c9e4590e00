"""The comparison table: pooled arms, verdicts, convergence and cost, and the headline DVC metric."""

import hashlib

import pandas as pd

from defectseg.config.params import Params
from defectseg.report.convergence import convergence, stalled
from defectseg.report.pooled import ArmImages, class_advice, class_verdicts, mean_over_seeds, pool_arms, pooled_metrics, verdicts
from defectseg.report.run_outputs import RunOutputs


def run_convergence(outputs: list[RunOutputs], params: Params) -> dict[str, dict]:
    """Per run, from its val history over its model's epochs: converged or still learning
    (``convergence``), stalled far below the best run on its fold's val images (``stalled``),
    its best epoch and its status: converged, still learning or stalled."""
    best = {o.run.name: float(o.history["val_iou"].max()) for o in outputs}
    reference = {fold: max(best[o.run.name] for o in outputs if o.run.fold == fold) for fold in {o.run.fold for o in outputs}}
    result = {}
    for output in outputs:
        val_iou = output.history["val_iou"]
        by_epoch = pd.Series(val_iou.to_numpy(), index=val_iou.index + 1)
        tail = convergence(by_epoch, params.train_for(output.run.model).epochs)
        stuck = tail["converged"] and stalled(best[output.run.name], reference[output.run.fold])
        status = "stalled" if stuck else "converged" if tail["converged"] else "still learning"
        result[output.run.name] = {**tail, "stalled": stuck, "status": status, "best_val_iou": round(best[output.run.name], 4), "best_epoch": output.metrics["best_epoch"]}
    return result


def unsettled(outputs: list[RunOutputs], runs: dict[str, dict]) -> dict[str, dict[str, list[str]]]:
    """Per arm, its runs that are still learning and those that stalled."""
    arms: dict[str, dict[str, list[str]]] = {}
    for output in outputs:
        arm = arms.setdefault(output.run.arm, {"still learning": [], "stalled": []})
        status = runs[output.run.name]["status"]
        if status != "converged":
            arm[status].append(output.run.name)
    return arms


def unsettled_text(marks: dict[str, list[str]]) -> str:
    return ", ".join(f"{len(names)} run(s) {status}" for status, names in marks.items() if names)


def _flag_unsettled(verdict: dict, marks: dict[str, dict[str, list[str]]]) -> dict:
    """The verdict, its sentence extended when an arm it compares had runs still learning or stalled."""
    late = [f"{arm} ({unsettled_text(marks[arm])})" for arm in (verdict["a"], verdict["b"]) if unsettled_text(marks[arm])]
    if not late:
        return {**verdict, "settled": True}
    return {**verdict, "settled": False, "verdict": verdict["verdict"] + f"; not settled: {', '.join(late)}, so it compares runs that had not finished learning or stalled"}


def _arm_cost(outputs: list[RunOutputs], arm: str) -> dict:
    """The arm's training cost in TFLOP (forward and backward passes of its training steps), summed
    over its runs; None where a run did not record it. Unlike minutes, the same on every machine."""
    costs = [o.cost for o in outputs if o.run.arm == arm]
    known = all("train_tflop" in c for c in costs)
    return {"train_tflop": round(sum(c["train_tflop"] for c in costs), 1) if known else None}


def comparison(outputs: list[RunOutputs], params: Params, groups: dict[str, str] | None = None) -> dict:
    """The pooled figures per arm, the verdicts, each arm's test IoU per fold, and each run's
    convergence; intervals and verdicts resample ``groups`` (id to group; None: each image alone)."""
    report = params.report
    arms = pool_arms({o.run: o.per_image for o in outputs}, groups)
    pooled = {
        arm: pooled_metrics(images, params.evaluate.max_false_alarm_rate, report.bootstrap_samples, report.bootstrap_seed, report.confidence)
        for arm, images in arms.items()
    }
    per_fold: dict[str, dict[str, float | None]] = {}
    for arm in pooled:
        for fold in params.compare.folds:
            values = [o.metrics["test"]["iou"] for o in outputs if o.run.arm == arm and o.run.fold == fold]
            per_fold.setdefault(arm, {})[str(fold)] = mean_over_seeds(values)
    runs = run_convergence(outputs, params)
    marks = unsettled(outputs, runs)
    for arm, row in pooled.items():
        row["runs_still_learning"] = marks[arm]["still learning"]
        row["runs_stalled"] = marks[arm]["stalled"]
        row["cost"] = _arm_cost(outputs, arm)
    run_list = [o.run for o in outputs]
    samples, seed, confidence = report.bootstrap_samples, report.bootstrap_seed, report.confidence
    judged = verdicts({arm: images.totals for arm, images in arms.items()}, run_list, samples, seed, confidence)
    by_class = class_verdicts(arms, run_list, samples, seed, confidence)
    for entry in by_class.values():
        entry["verdicts"] = [_flag_unsettled(v, marks) for v in entry["verdicts"]]
    settled = [arm for arm in pooled if not unsettled_text(marks[arm])]
    return {
        "folds": params.compare.fold_count,
        "data": measured_data(next(iter(arms.values()))),
        "arms": pooled,
        "verdicts": [_flag_unsettled(v, marks) for v in judged],
        "class_verdicts": by_class,
        "advice": class_advice(arms, settled, samples, seed, confidence),
        "test_iou_per_fold": per_fold,
        "runs": runs,
    }


def measured_data(arm: ArmImages) -> dict:
    """What the figures were measured on: the images and groups, and the SHA-256 of the sorted
    image ids, one per line, each line ending in a newline (``sha256sum`` of such a list gives it)."""
    ids = sorted(str(image) for image in arm.rows["id"].unique())
    return {
        "images": len(ids),
        "groups": arm.totals.groups,
        "ids_sha256": hashlib.sha256("".join(f"{image}\n" for image in ids).encode()).hexdigest(),
    }


def interval_text(pair: tuple) -> str:
    return "n/a" if pair[0] is None else f"[{pair[0]:.3f}, {pair[1]:.3f}]"


def headline(table: dict) -> dict:
    """The few figures ``dvc exp show`` leads with: per arm, pooled IoU, recall and false alarms with intervals."""
    return {
        arm: {
            "iou": round(row["iou"], 4),
            "iou_ci": interval_text(row["iou_interval"]),
            "recall": round(row["detection_recall"], 4),
            "recall_ci": interval_text(row["detection_recall_interval"]),
            "false_alarms": None if row["false_alarm_rate"] is None else round(row["false_alarm_rate"], 4),
            "false_alarms_ci": interval_text(row["false_alarm_rate_interval"]),
        }
        for arm, row in table["arms"].items()
    }
