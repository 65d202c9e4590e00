"""The model card: the shipped model's ``README.md``, written from the ship stage's figures.

It says what the model is, what it was trained on and how, how well it does on images it never
trained on (pooled and per class, with intervals), what it costs, what it is for and where it
falls short. It holds no date, machine or commit, since identical inputs must give identical
bytes (DVC's run-cache hands one machine's output to another): the registry's git tag names the
commit of a version (``gto show``), and ``defectseg serve`` reports it at ``/health``.
"""

from defectseg.config.params import Params

CLASSES = ("blowhole", "break", "crack", "fray", "uneven")


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _interval(pair: list | None) -> str:
    return "" if not pair or pair[0] is None else f" [{pair[0]:.3f}, {pair[1]:.3f}]"


def _class_row(figures: dict) -> str:
    per_class = figures.get("per_class_iou") or {}
    return " | ".join(_share(per_class.get(name)) for name in CLASSES)


def _design(card: dict) -> str:
    roles = card["data"]["per_fold"][0]
    if card["folds"] == 1:
        return f"one split, stratified by defect class: train {roles['train']}, val {roles['val']}, test {roles['test']} pairs"
    return (f"{card['folds']}-fold cross-validation by group (one physical object each), stratified by defect class: each "
            "fold's run trains on the other folds' groups (less a val part that chooses its decision) and is tested on its own "
            "fold's groups, objects it never saw")


def model_card(card: dict, params: Params) -> str:
    """The Markdown model card for ``card`` (``ship.ship_model``'s figures)."""
    arm, figures, data = card["arm"], card["arm_figures"], card["data"]
    model, loss = card["model"], card["loss"]
    recipe = params.train_for(model)
    settings = getattr(params.models, model).model_dump(exclude={"train"})
    loss_settings = getattr(params.losses, loss).model_dump()
    classes = ", ".join(f"{name} {count}" for name, count in sorted(data["per_class"].items()))
    confidence = f"{params.report.confidence:.0%}"
    counted = f"{figures['groups']} groups, {figures['images']} images" if "groups" in figures else f"{figures['images']} images"
    defect_counted = f"{figures['defect_groups']} groups, {figures['defect_images']} images" if "defect_groups" in figures else f"{figures['defect_images']}"
    resampled = "groups (one physical object each)" if "groups" in figures else "images"
    lines = [
        f"# Model card: `{model}` trained with `{loss}` ({card['run']})",
        "",
        "Finds surface defects in grayscale images: for each image, a binary defect mask at the image's own size, "
        "and whether the image has a defect at all. Run it with `defectseg predict --model DIR` or serve it with "
        "`defectseg serve --model DIR` (this folder is `DIR`), or fetch it by name from the registry "
        "(`defectseg predict --repo REPO --artifact NAME#prod`).",
        "",
        *(() if card["recommended"] else (
            "**Not a recommendation: no arm of the comparison converged**, so the report recommends none. This is the arm "
            "with the highest pooled test IoU; train longer (see the report's convergence table) before using it.", "")),
        "## Why this model",
        "",
        (f"The comparison's report recommends `{arm}`: the highest pooled test IoU among the arms whose every run converged. "
         if card["recommended"] else f"`{arm}` has the highest pooled test IoU of the comparison's arms. ")
        + f"Of its runs, {card['choice']}. Every candidate below is measured on images it never trained on (its own test part).",
        "",
        "| run | fold | status | val IoU | test IoU | test recall | test false alarms | shipped |",
        "|---|---:|---|---:|---:|---:|---:|---|",
        *(f"| {c['run']} | {c['fold']} | {c['status']} | {c['val']['iou']:.3f} | {c['test']['iou']:.3f} | "
          f"{_share(c['test']['detection_recall'])} | {_share(c['test']['false_alarm_rate'])} | {'yes' if c['shipped'] else ''} |"
          for c in card["candidates"]),
        "",
        *(() if len(card.get("members", [])) < 2 else (
            f"**What ships is the ensemble of these {len(card['members'])} runs**, their defect probabilities averaged, so that "
            "every group of the data set trained some member. The figures below are the cross-validated estimate for the "
            "*procedure* (this recipe trained on the other folds' groups, tested on groups it never saw); the ensemble averages "
            "such models and, as ensembles do, is expected to do at least about as well. It is not measured itself: every image "
            "trained some member.", "")),
        "## Data",
        "",
        f"- Source: `{params.data.source}` ({data['layout']} layout), {data['pairs']} pairs: {classes}.",
        f"- Design: {_design(card)}.",
        f"- Images are resized to the model's input ({params.preprocess.geometry}, `preprocess.image_size` "
        f"{params.preprocess.image_size}); masks and every figure are at each image's own size.",
        "",
        "## Quality on images the arm never trained on",
        "",
        f"The arm's test images, pooled over its {len(card['candidates'])} run(s) ({counted}; "
        f"{defect_counted} with defects); intervals are {confidence} bootstrap intervals over {resampled}.",
        "",
        "| pooled IoU | defect-image IoU | mean image IoU | image recall | false alarms | image AUROC |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {figures['iou']:.3f}{_interval(figures['iou_interval'])} "
        f"| {_share(figures['defect_image_iou'])}{_interval(figures['defect_image_iou_interval'])} | {_share(figures['mean_image_iou'])} | "
        f"{_share(figures['detection_recall'])}{_interval(figures['detection_recall_interval'])} | "
        f"{_share(figures['false_alarm_rate'])}{_interval(figures['false_alarm_rate_interval'])} | {_share(figures['image_auroc'])} |",
        "",
        "IoU per defect class (pooled within the class):",
        "",
        "| " + " | ".join(CLASSES) + " |",
        "|" + "---:|" * len(CLASSES),
        f"| {_class_row(figures)} |",
        "",
        "## Training",
        "",
        f"- Model `{model}`: " + ", ".join(f"{key} {value}" for key, value in settings.items()) + ".",
        f"- Loss `{loss}`: " + ", ".join(f"{key} {value}" for key, value in loss_settings.items()) + ".",
        f"- Recipe: {recipe.epochs} epochs, {recipe.optimizer} at {recipe.lr:g} ({recipe.schedule}), batch {recipe.batch_size}, "
        f"{recipe.precision}; copy-paste shares {dict(recipe.copy_paste.shares) or 'none'}.",
        f"- Cost: {figures['cost'].get('train_tflop', 'n/a')} TFLOP of training steps for the arm's runs (machine-independent; "
        "wall minutes are in each run's `cost.json`, outside DVC).",
        f"- Weights: `model.pt`, SHA-256 `{card['weights_sha256']}`.",
        "",
        "## Decision",
        "",
        ("`threshold.json` holds the median of the members' decisions, each chosen on its run's val part"
         if len(card.get("members", [])) > 1 else "`threshold.json` holds the decision chosen on the run's val part")
        + ": the pixel threshold, the image gate "
        f"(false alarms within {params.evaluate.max_false_alarm_rate:.0%} of defect-free images"
        + (f", at {params.evaluate.false_alarm_confidence:.0%} confidence" if params.evaluate.false_alarm_confidence else "")
        + ") and the smallest region kept.",
        "",
        "## Intended use and known limits",
        "",
        "- For inspecting grayscale images of the kind it was trained on (the source above): flag defective parts and "
        "show where the defect is, with a person deciding on flagged parts.",
        "- Not for other materials, lighting or cameras without re-measuring: the figures above hold for images like the "
        "test images, and the false-alarm budget was set on val images of the same source.",
        "- Pooled IoU is ruled by large defects; small classes (cracks, blowholes) are drawn less well than the pooled "
        "figure says: read the per-class row.",
        "- The intervals come from a small test set; a difference inside them is not a difference.",
        "",
        "## Provenance",
        "",
        "This card holds no commit, date or machine, so that the same inputs give the same bytes. The commit of a "
        "registered version is the one its git tag names (`gto show`, `gto describe NAME@VERSION`); `defectseg serve` "
        "reports it at `/health`.",
        "",
    ]
    return "\n".join(lines)
