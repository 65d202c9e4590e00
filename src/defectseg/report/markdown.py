"""The report page (``report.md``): settings, headline table, verdicts, per-class and per-fold tables, pictures."""


import pandas as pd

from defectseg.config.params import Params
from defectseg.report.comparison import interval_text, unsettled_text
from defectseg.report.convergence import GAIN, STALL_SHARE
from defectseg.report.pooled import MIN_CLASS_GROUPS, MIN_CLASS_IMAGES
from defectseg.report.run_outputs import RunOutputs


def _settings_text(name: str, params: Params) -> str:
    settings = pd.json_normalize(getattr(params.models, name).model_dump(exclude={"train"})).iloc[0]
    return f"`{name}` (" + ", ".join(f"{k} {v}" for k, v in settings.items()) + ")"


def _recipe_text(name: str, params: Params) -> str:
    recipe = params.train_for(name)
    warmup = f", {recipe.warmup_epochs} warm-up" if recipe.warmup_epochs else ""
    own = " (its own recipe)" if getattr(params.models, name).train else ""
    return f"`{name}`{own}: {recipe.epochs} epochs, {recipe.schedule} to {recipe.lr:g}{warmup}, batch {recipe.batch_size}, {recipe.precision}"


def _score_text(share: float, head_models: list[str], models: list[str]) -> str:
    """What an image's score is: the image head's probability for ``head_models``, else from its pixels."""
    pixels = f"the mean of its top {share:.2%} of pixel probabilities" if share else "its highest pixel probability"
    if not head_models:
        return pixels
    head = "the image head's \"has a defect\" probability"
    if len(head_models) == len(models):
        return head
    return f"{head} for {', '.join(f'`{m}`' for m in head_models)}, else {pixels}"


_OBJECTIVE_TEXT = {"pooled": "global defect IoU", "class_mean": "the mean of the defect classes' IoUs"}


def _head_models(params: Params) -> list[str]:
    return [m for m in params.compare.models if getattr(params.models, m).has_image_head]


def _geometry_text(params: Params) -> str:
    preprocess = params.preprocess
    if preprocess.geometry == "squash":
        height, width = preprocess.height_width
        return f"The models see each image resized to {height}x{width}."
    crops = sorted({params.train_for(m).augment.crop_size for m in params.compare.models})
    size = "at its own pixels" if preprocess.scale == 1 else f"scaled by {preprocess.scale:g}"
    return (f"The models see each image {size}, its aspect ratio kept; they train on "
            f"{' / '.join(f'{c}x{c}' for c in crops)} crops and run on whole images.")


def _gate_budget_text(evaluate) -> str:
    budget = f"{evaluate.max_false_alarm_rate:.0%}"
    if evaluate.false_alarm_confidence == 0:
        return f"that lets at most {budget} of val's defect-free images through"
    return (f"set so that the {evaluate.false_alarm_confidence:.0%} upper confidence bound (Clopper-Pearson) of val's "
            f"false-alarm rate stays within {budget}, a promise for new images, not only for val's")


def _header_lines(params: Params, data_summary: dict) -> list[str]:
    compare, evaluate = params.compare, params.evaluate
    folds = compare.fold_count
    roles = data_summary["per_fold"][0]
    if folds == 1:
        design = f"one split (train {roles['train']}, val {roles['val']}, test {roles['test']}); the table covers its test images"
    else:
        design = (
            f"{folds}-fold cross-validation by group, stratified by defect class: each fold's run trains on the other folds' "
            f"groups (val carved from them, by group), and the table pools every fold's test predictions, so it covers all "
            f"{data_summary['pairs']} images once per seed"
        )
    return [
        "# Comparison of models and losses",
        "",
        f"Data: {data_summary['layout']} source, {data_summary['pairs']} pairs; {design}. "
        f"{_geometry_text(params)} "
        f"Models: {'; '.join(_settings_text(m, params) for m in compare.models)}. "
        f"Training: {'; '.join(_recipe_text(m, params) for m in compare.models)}. "
        f"Losses: {', '.join(compare.losses)}. Seeds: {', '.join(map(str, compare.seeds))}.",
        "",
        "**Every figure is measured at each image's own size**: the probability map is resized back "
        "to the original image and compared with the original mask, as `defectseg predict` writes it.",
        "",
        "Each run's decision is chosen on its val part and then applied unchanged to its test part: "
        f"the pixel threshold that maximises {_OBJECTIVE_TEXT[evaluate.threshold_objective]}, and an image gate (an image whose score, "
        f"{_score_text(evaluate.image_score_share, _head_models(params), params.compare.models)}, is under it gets an empty mask) "
        f"{_gate_budget_text(evaluate)}. "
        + (f"Predicted regions smaller than {evaluate.min_region_share:.2%} of the image area are dropped. " if evaluate.min_region_share else "")
        + ("Probabilities are averaged over the image and its horizontal and vertical mirror images. " if evaluate.flip_tta else ""),
        "",
    ]


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _headline_lines(table: dict, confidence: int, budget: float) -> list[str]:
    first = next(iter(table["arms"].values()))
    lines = [
        "## Headline",
        "",
        f"{first['groups']} groups ({first['images']} test images; {first['defect_groups']} groups, {first['defect_images']} images with defects), seeds pooled. "
        f"A group is one physical object, however many times it was photographed. "
        f"Brackets: {confidence}% bootstrap intervals over groups. "
        f"An arm marked *still learning* has runs whose val IoU rose by more than {GAIN} over their last eighth of epochs; "
        f"one marked *stalled* has runs that stopped under {STALL_SHARE:.0%} of the best val IoU any run reached on the same fold "
        "(see Training, below); verdicts involving either are not settled. "
        "Training TFLOP: the floating-point operations of the arm's training steps (forward and backward, "
        "counted from the model's shapes, validation left out), summed over its runs: a cost that is the same on every machine.",
        "",
        "| model | loss | IoU | defect-image IoU | mean image IoU | recall | false alarms | detection P | image AUROC | R at FA rate | training TFLOP |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for arm, row in table["arms"].items():
        model, loss = arm.rsplit("-", 1)
        marks = unsettled_text({"still learning": row["runs_still_learning"], "stalled": row["runs_stalled"]})
        loss = loss + (f" *{marks}*" if marks else "")
        tflop = row["cost"]["train_tflop"]
        tflop = "n/a" if tflop is None else f"{tflop:,.1f}"
        lines.append(
            f"| {model} | {loss} | {row['iou']:.3f} {interval_text(row['iou_interval'])} "
            f"| {_number(row['defect_image_iou'])} {interval_text(row['defect_image_iou_interval'])} | {_number(row['mean_image_iou'])} "
            f"| {row['detection_recall']:.3f} {interval_text(row['detection_recall_interval'])} "
            f"| {_number(row['false_alarm_rate'])} {interval_text(row['false_alarm_rate_interval'])} "
            f"| {row['detection_precision']:.3f} | {_number(row['image_auroc'])} | {_number(row['recall_at_false_alarm_rate'])} | {tflop} |"
        )
    return lines + ["", _budget_sentence(table, budget, confidence)]


def _budget_sentence(table: dict, budget: float, confidence: int) -> str:
    """Each arm's test false-alarm interval beside the false-alarm budget: kept, or not shown to be kept."""
    parts = []
    for arm, row in table["arms"].items():
        low, high = row["false_alarm_rate_interval"]
        if high is None:
            continue
        verdict = "within it" if high <= budget else "over it" if low > budget else "the interval spans it"
        parts.append(f"{arm} {row['false_alarm_rate']:.3f} [{low:.3f}, {high:.3f}]: {verdict}")
    return f"False-alarm budget {budget:.0%} (`evaluate.max_false_alarm_rate`); test false alarms with {confidence}% intervals: " + "; ".join(parts) + "."


def _verdict_lines(table: dict, samples: int) -> list[str]:
    lines = ["", f"## Verdicts: paired bootstrap over groups ({samples} resamples)", ""]
    lines += [f"- {v['verdict']}" for v in table["verdicts"]] or ["One arm only: nothing to compare."]
    lines += ["", "### Per defect class", "", f"Each pair again, on one class's defective images only (IoU pooled within the class), "
              f"for each class with at least {MIN_CLASS_IMAGES} of them from at least {MIN_CLASS_GROUPS} groups; fewer cannot carry an interval.", ""]
    for name, entry in table["class_verdicts"].items():
        counted = f"{entry['groups']} groups ({entry['images']} images)"
        if not entry["verdicts"]:
            why = "too few to compare" if not _enough(entry) else "one arm only: nothing to compare"
            lines.append(f"- **{name}** ({counted}): {why}.")
        for verdict in entry["verdicts"]:
            lines.append(f"- **{name}** ({counted}): {verdict['verdict']}")
    return lines


def _enough(entry: dict) -> bool:
    return entry["images"] >= MIN_CLASS_IMAGES and entry["groups"] >= MIN_CLASS_GROUPS


def _advice_sentence(name: str, entry: dict) -> str:
    count = "" if entry["images"] is None else f" ({entry['groups']} groups, {entry['images']} defective images)"
    if entry["images"] is not None and not _enough(entry):
        return f"- **{name}**{count}: the data cannot tell (fewer than {MIN_CLASS_IMAGES} defective images or {MIN_CLASS_GROUPS} groups)."
    if entry["best"] is None:
        return f"- **{name}**{count}: the data cannot tell (no arm finished learning)."
    best = f"`{entry['best']}` (IoU {entry['iou']:.3f})"
    beaten = f"; it beats {', '.join(f'`{a}`' for a in entry['beats'])}" if entry["beats"] else ""
    higher = entry.get("higher_unsettled", {})
    unsettled = (
        f" Higher but not finished (still learning or stalled): {', '.join(f'`{a}` (IoU {v:.3f})' for a, v in higher.items())}; "
        f"train {'it' if len(higher) == 1 else 'them'} longer before choosing."
        if higher
        else ""
    )
    if not entry["cannot_tell"] and not entry["beats"]:
        return f"- **{name}**{count}: {best}, the only arm that finished learning.{unsettled}"
    if not entry["cannot_tell"]:
        return f"- **{name}**{count}: use {best}: it beats every other arm that finished learning.{unsettled}"
    return f"- **{name}**{count}: the data cannot tell {best} from {', '.join(f'`{a}`' for a in entry['cannot_tell'])}{beaten}.{unsettled}"


def _advice_lines(table: dict) -> list[str]:
    lines = ["", "## Which to use, per defect class", "",
             "The arm with the highest IoU on each class's defective images, among arms whose runs all converged, and "
             "whether a paired bootstrap tells it from each other such arm.", ""]
    return lines + [_advice_sentence(name, entry) for name, entry in table["advice"].items()]


def _per_class_lines(table: dict, key: str, title: str) -> list[str]:
    arms = table["arms"]
    classes = sorted({c for row in arms.values() for c in row[key]})
    lines = ["", f"## {title}", "", "| arm | " + " | ".join(classes) + " |", "|---|" + "---:|" * len(classes)]
    for arm, row in arms.items():
        lines.append(f"| {arm} | " + " | ".join(_number(row[key].get(c)) for c in classes) + " |")
    return lines


def _per_fold_lines(table: dict) -> list[str]:
    folds = next(iter(table["test_iou_per_fold"].values()))
    lines = ["", "## Test IoU per fold", "", "| arm | " + " | ".join(f"fold {f}" for f in folds) + " |", "|---|" + "---:|" * len(folds)]
    for arm, row in table["test_iou_per_fold"].items():
        lines.append(f"| {arm} | " + " | ".join(_number(v) for v in row.values()) + " |")
    return lines


def _convergence_lines(table: dict) -> list[str]:
    lines = [
        "",
        "## Training: did each run finish learning?",
        "",
        f"A run is *still learning* when its best val IoU over the last eighth of its epochs beats its best before "
        f"that by more than {GAIN} (under annealed schedules the rate is below 4% of its peak there). A run that stopped "
        f"improving is *stalled* when its best val IoU is under {STALL_SHARE:.0%} of the best any run here reached on its fold's val images: "
        "stuck on an early plateau, not finished.",
        "",
        "| run | best epoch | best val IoU | gain over the last eighth | verdict |",
        "|---|---:|---:|---:|---|",
    ]
    for name, run in table["runs"].items():
        gain = "n/a" if run["tail_gain"] is None else f"{run['tail_gain']:+.3f}"
        status = run["status"] if run["status"] == "converged" else f"**{run['status']}**"
        lines.append(f"| {name} | {run['best_epoch']} | {run['best_val_iou']:.3f} | {gain} | {status} |")
    return lines


def _picture_lines(shown: list[RunOutputs]) -> list[str]:
    lines = [
        "",
        "## Training curves (first seed, fold 0)",
        "",
        "![training curves](figures/training_curves.png)",
        "",
        "## Precision-recall on test pixels (first seed, fold 0)",
        "",
        "![precision-recall curves](figures/pr_curves.png)",
        "",
        "## Worst test images (first seed, fold 0)",
        "",
        "Each picture: image | truth (green) | prediction: true positives green, false positives red, "
        "false negatives blue. Lowest per-image IoU first, among images with any error.",
        "",
    ]
    for output in shown:
        pictures = sorted(output.overlays.glob("*.png"))
        lines += [f"### {output.run.name}", ""]
        lines += [f"![{p.stem}](overlays/{output.run.name}/{p.name})" for p in pictures] or ["No test image has an error."]
        lines.append("")
    return lines


DEFINITIONS = [
    "## Definitions",
    "",
    "All figures are counted at each image's original size, on test images only: with K-fold "
    "cross-validation every image is a test image exactly once (out-of-fold), predicted by the run that "
    "did not train on it.",
    "",
    "- **IoU**: global defect IoU, with intersection and union summed over every test image "
    "(defect-free ones included, so false alarms count). Large defects dominate it.",
    "- **defect-image IoU**: the global IoU over the images that have defects only: the masks' quality without the "
    "defect-free images' false alarms.",
    "- **mean image IoU**: IoU per image, averaged over the images that have defects (each defect image counts once).",
    "- **recall**: share of defective images whose predicted mask has any defect pixel (image-level recall).",
    "- **false alarms**: share of defect-free images with any predicted defect pixel.",
    "- **detection P**: image-level precision of \"has a defect\".",
    "- **image AUROC**: area under the ROC curve of the image score (a model's image head's probability where it has "
    "one, else `evaluate.image_score_share`: the mean of an image's top share of pixel probabilities, or its highest one) "
    "for \"has a defect\".",
    "- **R at FA rate**: the highest image-level recall any image-score threshold reaches while flagging at most "
    "`evaluate.max_false_alarm_rate` of the defect-free images (threshold-free, read off the split's own ROC).",
    "- Intervals: percentile intervals of a bootstrap over groups: a drawn group brings all its images (one object "
    "photographed again is not a new sample), and an image keeps all its seeds' predictions. "
    "A verdict compares two arms on the same resampled groups (paired bootstrap of the IoU difference) and calls "
    "a difference only when its interval excludes zero.",
    "- Per-run detail (pixel precision and recall, Dice, pixel AP, train and val figures) is in `metrics/runs/<run>.json`.",
    "- Empty cases: IoU and Dice are 1 when truth and prediction are both empty; precision is 1 when nothing is "
    "predicted, recall is 1 when there is nothing to find.",
    "",
]


def _leakage_lines(data_summary: dict) -> list[str]:
    """What lies near the test set: the leakage audit prepare wrote (absent for data sets prepared before groups)."""
    audit = data_summary.get("leakage_audit")
    if audit is None:
        return ["", "## Leakage audit", "", "Not run: this data set was prepared before groups existed (`dvc repro -f prepare`)."]
    lines = [
        "", "## Leakage audit", "",
        f"{data_summary['pairs']} images in {data_summary['groups']} groups (from {data_summary['group_source']}); "
        f"{audit['near_duplicate_pairs']} image pairs are near-duplicates (high-pass thumbnail correlation at least "
        f"{audit['similarity']}) and sit in one group. No group holds two roles in any fold, so no near-duplicate pair does either:",
        "",
        "| fold | near-duplicate pairs across roles | closest pair across roles |",
        "|---|---|---|",
    ]
    for fold, entry in enumerate(audit["per_fold"]):
        closest = entry["closest"][0] if entry["closest"] else None
        pair = "none" if closest is None else f"`{closest['a']}` ({closest['a_role']}) ~ `{closest['b']}` ({closest['b_role']}): {closest['similarity']:.3f}"
        lines.append(f"| {fold} | {entry['near_duplicates_across_roles']} | {pair} |")
    lines += ["", "The closest pairs across roles of each fold are listed in `data/prepared/summary.json`; look at them to see how near the test images lie to the training images."]
    return lines


def _field_lines(data_summary: dict) -> list[str]:
    """The served models' figures on the images inspectors reviewed (review folders among the data's sources)."""
    folders = data_summary.get("field_figures")
    if not folders:
        return []
    lines = ["", "## In the field: the served models on the images inspectors reviewed", "",
             "Per review folder and served model version, on each image's latest review: image recall and false alarms "
             "of the served decision, and the pooled IoU of its masks against the inspectors' (`defectseg review summary`). "
             "Set them beside the cross-validated figures above; reviewed images are not a random sample when inspectors "
             "review mainly flagged parts.", "",
             "| folder | model | version | reviews (accept / clear / correct) | images | image recall | false alarms | IoU |",
             "|---|---|---|---|---:|---:|---:|---:|"]
    for folder, versions in folders.items():
        for entry in versions:
            verdicts = " / ".join(str(entry["verdicts"][name]) for name in ("accept", "clear", "correct"))
            shares = " | ".join("n/a" if entry[key] is None else f"{entry[key]:.3f}" for key in ("recall", "false_alarms", "iou"))
            lines.append(f"| {folder} | {entry['model']} | {entry['model_version']} | {entry['reviews']} ({verdicts}) | {entry['images']} | {shares} |")
    return lines


def render_markdown(table: dict, shown: list[RunOutputs], params: Params, data_summary: dict) -> str:
    """The report page; figures and overlays are linked relative to it."""
    lines = _header_lines(params, data_summary) + _headline_lines(table, int(params.report.confidence * 100), params.evaluate.max_false_alarm_rate)
    lines += _verdict_lines(table, params.report.bootstrap_samples) + _advice_lines(table)
    lines += _per_class_lines(table, "per_class_iou", "IoU per defect class (pooled within the class)")
    lines += _per_class_lines(table, "per_class_mean_image_iou", "Mean image IoU per defect class")
    lines += _per_class_lines(table, "per_class_recall", "Image recall per defect class (share of its defective images flagged)")
    lines += _per_fold_lines(table) + _leakage_lines(data_summary) + _field_lines(data_summary) + _convergence_lines(table) + _picture_lines(shown)
    return "\n".join(lines + DEFINITIONS)
