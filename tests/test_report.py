"""The report pools each (model, loss) arm's test images over folds and seeds, gives intervals
and verdicts, and renders tables, figures and overlays; fixture runs stand in for evaluate."""

import hashlib
import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest

from conftest import params_with
from defectseg.config.runs import Run
from defectseg.errors import DataError
from defectseg.report.build import build_report
from defectseg.report.markdown import _advice_sentence, _score_text
from defectseg.report.pooled import advice, class_totals, class_verdicts, pool_arms, verdict_line

IMAGES_PER_FOLD = 10


def fold_ids(fold: int) -> list[str]:
    return [f"t{fold}{i}" for i in range(IMAGES_PER_FOLD)]


EPOCHS = 8
SETTLED = [0.2, 0.3, 0.4, 0.5, 0.55, 0.56, 0.56, 0.565]
RISING = [0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5]


def write_run(root, run: Run, tp, test_iou: float = 0.5, val_iou: list[float] = SETTLED):
    """A run's outputs as evaluate and train write them: images t<fold>0..4 have defects (``tp``
    true pixels each, 5 false and 5 missed), t<fold>5..9 are free, t<fold>9 with 3 false pixels;
    ``val_iou`` per epoch of an ``EPOCHS``-epoch run."""
    (root / "metrics").mkdir(exist_ok=True)
    split = {"iou": test_iou, "pixel_ap": 0.6}
    (root / "metrics" / f"{run.name}.json").write_text(json.dumps({"threshold": 0.4, "best_epoch": 3, "fold": run.fold, "test": split}))
    folder = root / "evaluation" / run.name
    (folder / "overlays").mkdir(parents=True)
    (folder / "overlays" / "01_t3_iou0.10.png").write_bytes(b"")
    defect = np.arange(IMAGES_PER_FOLD) < 5
    table = pd.DataFrame(
        {
            "id": fold_ids(run.fold),
            "defect_class": np.where(defect, "crack", "free"),
            "tp": np.where(defect, np.resize(tp, IMAGES_PER_FOLD), 0),
            "fp": np.where(defect, 5, [0, 0, 0, 0, 0, 0, 0, 0, 0, 3]),
            "fn": np.where(defect, 5, 0),
            "tn": 100,
            "score": np.where(defect, 0.9, 0.2),
        }
    )
    table.to_csv(folder / "per_image.csv", index=False)
    pd.DataFrame({"recall": [0.0, 0.5, 1.0], "precision": [1.0, 0.8, 0.3]}).to_csv(folder / "pr_curve.csv", index=False)
    plots = root / "dvclive" / run.name / "plots" / "metrics"
    losses = [1 - v for v in val_iou]
    for group, metric, values in [("train", "loss", losses), ("val", "loss", losses), ("val", "iou", val_iou)]:
        (plots / group).mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"step": range(len(values)), metric: values}).to_csv(plots / group / f"{metric}.tsv", sep="\t", index=False)


TP = {("unet", "bce"): 10, ("unet", "dice"): 20, ("resnet_unet", "bce"): 10, ("resnet_unet", "dice"): [6, 14, 6, 14, 10]}


@pytest.fixture
def fixture_runs(tmp_path):
    for (model, loss), tp in TP.items():
        for fold in (0, 1):
            write_run(tmp_path, Run(model, loss, 0, fold), tp, test_iou=0.5 + fold / 10)
    (tmp_path / "summary.json").write_text(
        json.dumps({"layout": "synthetic", "pairs": 20, "folds": 2, "per_fold": [{"train": 8, "val": 2, "test": 10}] * 2})
    )
    return tmp_path


def build(root, **overrides):
    settings = {"compare.models": ["unet", "resnet_unet"], "compare.losses": ["bce", "dice"], "compare.folds": [0, 1], "train.epochs": EPOCHS, **overrides}
    return build_report(params_with(**settings), root / "metrics", root / "evaluation", root / "dvclive", root / "summary.json", root / "reports", root)


def test_report_pools_every_fold_into_one_table_with_intervals(fixture_runs):
    table = build(fixture_runs)
    unet_bce = table["arms"]["unet-bce"]
    # 10 defect images with tp 10, fp 5, fn 5; 10 free images, 2 of them with 3 false pixels
    assert unet_bce["iou"] == pytest.approx(100 / (100 + 50 + 6 + 50))
    assert unet_bce["images"] == 20 and unet_bce["defect_images"] == 10
    assert unet_bce["detection_recall"] == 1.0 and unet_bce["false_alarm_rate"] == pytest.approx(0.2)
    low, high = unet_bce["iou_interval"]
    assert low < unet_bce["iou"] < high
    assert table["test_iou_per_fold"]["unet-bce"] == {"0": 0.5, "1": 0.6}
    report = (fixture_runs / "reports" / "report.md").read_text()
    assert "2-fold cross-validation by group" in report and "20 groups (20 test images; 10 groups, 10 images with defects)" in report
    assert f"| unet | bce | {unet_bce['iou']:.3f} [{low:.3f}, {high:.3f}] |" in report
    assert "| unet-dice | 0.500 | 0.600 |" in report
    assert "measured at each image's own size" in report
    headline = json.loads((fixture_runs / "headline.json").read_text())
    assert set(headline) == {"unet-bce", "unet-dice", "resnet_unet-bce", "resnet_unet-dice"}
    assert headline["unet-bce"] == {
        "iou": round(unet_bce["iou"], 4),
        "iou_ci": f"[{low:.3f}, {high:.3f}]",
        "recall": 1.0,
        "recall_ci": "[1.000, 1.000]",
        "false_alarms": 0.2,
        "false_alarms_ci": headline["unet-bce"]["false_alarms_ci"],
    }
    assert json.loads((fixture_runs / "comparison.json").read_text())["arms"]["unet-dice"]["iou"] == pytest.approx(table["arms"]["unet-dice"]["iou"])


def test_defect_image_iou_leaves_the_false_alarms_on_defect_free_tiles_out(fixture_runs):
    unet_bce = build(fixture_runs)["arms"]["unet-bce"]
    # the 10 defect images alone (tp 10, fp 5, fn 5 each); the free tiles' 6 false pixels are out
    assert unet_bce["defect_image_iou"] == pytest.approx(100 / 200)
    assert unet_bce["iou"] < unet_bce["defect_image_iou"]
    low, high = unet_bce["defect_image_iou_interval"]
    assert low <= unet_bce["defect_image_iou"] <= high
    report = (fixture_runs / "reports" / "report.md").read_text()
    assert f"| {unet_bce['iou']:.3f} [" in report and f"| 0.500 [{low:.3f}, {high:.3f}] |" in report


def test_report_has_a_verdict_per_pair_of_losses_and_of_models(fixture_runs):
    table = build(fixture_runs)
    lines = [v["verdict"] for v in table["verdicts"]]
    assert len(lines) == 4
    assert lines[0].startswith("dice beats bce by +") and lines[0].endswith("(model unet)")
    assert lines[1].startswith("bce vs dice: no difference detected (+0.000 IoU") and lines[1].endswith("(model resnet_unet)")
    assert lines[2].startswith("unet vs resnet_unet: no difference detected (+0.000 IoU") and lines[2].endswith("(loss bce)")
    assert lines[3].startswith("unet beats resnet_unet by +") and lines[3].endswith("(loss dice)")
    report = (fixture_runs / "reports" / "report.md").read_text()
    assert all(f"- {line}" in report for line in lines)


def test_runs_still_learning_are_marked_in_the_table_and_the_verdicts_that_involve_them(fixture_runs):
    run = Run("unet", "dice", 0, 1)
    for path in (fixture_runs / "evaluation" / run.name, fixture_runs / "dvclive" / run.name):
        shutil.rmtree(path)
    write_run(fixture_runs, run, TP[("unet", "dice")], test_iou=0.6, val_iou=RISING)
    table = build(fixture_runs)
    assert table["runs"][run.name] == {"converged": False, "tail_gain": 0.1, "stalled": False, "status": "still learning", "best_val_iou": 0.5, "best_epoch": 3}
    assert table["runs"]["unet-bce-seed0-fold0"]["converged"]
    assert table["arms"]["unet-dice"]["runs_still_learning"] == [run.name] and table["arms"]["unet-bce"]["runs_still_learning"] == []
    flagged = [v["verdict"] for v in table["verdicts"] if "not settled" in v["verdict"]]
    assert len(flagged) == 2 and all("unet-dice (1 run(s) still learning)" in line for line in flagged)
    report = (fixture_runs / "reports" / "report.md").read_text()
    assert "| unet | dice *1 run(s) still learning* |" in report
    assert f"| {run.name} | 3 | 0.500 | +0.100 | **still learning** |" in report and "| unet-bce-seed0-fold0 | 3 | 0.565 | +0.005 | converged |" in report
    advice_section = report.split("## Which to use, per defect class")[1].split("##")[0]
    assert all("`unet-dice`" not in line.split("Higher but not finished")[0] for line in advice_section.splitlines()), "an arm still learning is never the advised one"


def test_a_run_stuck_on_an_early_plateau_is_marked_stalled_and_its_verdicts_not_settled(fixture_runs):
    run = Run("resnet_unet", "bce", 0, 0)
    for path in (fixture_runs / "evaluation" / run.name, fixture_runs / "dvclive" / run.name):
        shutil.rmtree(path)
    write_run(fixture_runs, run, TP[("resnet_unet", "bce")], val_iou=[0.03, 0.05, 0.055, 0.056, 0.056, 0.057, 0.056, 0.057])
    table = build(fixture_runs)
    assert table["runs"][run.name]["status"] == "stalled" and table["runs"][run.name]["converged"]
    assert table["arms"]["resnet_unet-bce"]["runs_stalled"] == [run.name]
    flagged = [v for v in table["verdicts"] if not v["settled"]]
    assert len(flagged) == 2 and all("resnet_unet-bce (1 run(s) stalled)" in v["verdict"] for v in flagged)
    report = (fixture_runs / "reports" / "report.md").read_text()
    assert "| resnet_unet | bce *1 run(s) stalled* |" in report and f"| {run.name} | 3 | 0.057 | +0.000 | **stalled** |" in report


def test_each_arm_shows_its_training_tflop_summed_over_its_runs(fixture_runs):
    for fold, tflop in ((0, 1250.25), (1, 2500.5)):
        name = Run("unet", "bce", 0, fold).name
        (fixture_runs / "dvclive" / name / "metrics.json").write_text(json.dumps({"best/epoch": 3, "cost/train_tflop": tflop}))
    table = build(fixture_runs)
    assert table["arms"]["unet-bce"]["cost"] == {"train_tflop": 3750.8}
    assert table["arms"]["unet-dice"]["cost"]["train_tflop"] is None
    report = (fixture_runs / "reports" / "report.md").read_text()
    assert "| 3,750.8 |" in report and report.count("| n/a |") >= 3


def test_verdict_line_reads_as_a_sentence():
    significant = {"difference": -0.031, "low": -0.05, "high": -0.012, "significant": True}
    assert verdict_line("bce", "dicebce", significant, 0.95) == "dicebce beats bce by +0.031 IoU, 95% CI [+0.012, +0.050]"
    unclear = {"difference": 0.01, "low": -0.02, "high": 0.04, "significant": False}
    assert verdict_line("bce", "dice", unclear, 0.95) == "bce vs dice: no difference detected (+0.010 IoU, 95% CI [-0.020, +0.040])"


def test_report_renders_per_class_tables_figures_and_overlays(fixture_runs):
    build(fixture_runs)
    report = (fixture_runs / "reports" / "report.md").read_text()
    assert "| arm | crack |" in report and "| unet-dice | 0.667 |" in report
    assert "![01_t3_iou0.10](overlays/unet-bce-seed0-fold0/01_t3_iou0.10.png)" in report
    assert "overlays/unet-bce-seed0-fold1" not in report
    for picture in ("figures/training_curves.png", "figures/pr_curves.png", "overlays/resnet_unet-dice-seed0-fold0/01_t3_iou0.10.png"):
        assert (fixture_runs / "reports" / picture).is_file()


def test_seeds_pool_as_predictions_of_the_same_images(fixture_runs):
    for (model, loss), tp in TP.items():
        for fold in (0, 1):
            write_run(fixture_runs, Run(model, loss, 1, fold), np.multiply(tp, 2))
    table = build(fixture_runs, **{"compare.seeds": [0, 1]})
    row = table["arms"]["unet-bce"]
    assert row["images"] == 20 and row["seeds"] == 2
    assert row["iou"] == pytest.approx((100 + 200) / (100 + 200 + 2 * (50 + 6 + 50)))


def test_an_image_tested_in_two_folds_is_refused():
    table = pd.DataFrame({"id": ["a", "b"], "defect_class": "crack", "tp": 1, "fp": 0, "fn": 0, "tn": 1, "score": 0.9})
    with pytest.raises(ValueError, match="unet-bce: image a is tested in more than one fold"):
        pool_arms({Run("unet", "bce", 0, 0): table, Run("unet", "bce", 0, 1): table.iloc[:1]})


def test_arms_that_test_different_images_are_refused():
    table = pd.DataFrame({"id": ["a", "b"], "defect_class": "crack", "tp": 1, "fp": 0, "fn": 0, "tn": 1, "score": 0.9})
    with pytest.raises(ValueError, match="arms test different images: unet-bce 2, unet-dice 1"):
        pool_arms({Run("unet", "bce", 0, 0): table, Run("unet", "dice", 0, 0): table.iloc[:1]})


def test_missing_run_is_named(fixture_runs):
    with pytest.raises(DataError, match="unet-focal-seed0-fold0.json: run unet-focal-seed0-fold0 has not been evaluated"):
        build(fixture_runs, **{"compare.losses": ["bce", "focal"]})


def test_header_names_each_models_settings_and_flip_tta(fixture_runs):
    build(fixture_runs, **{"models.unet.downscale": 2, "models.unet.refine.width": 8, "evaluate.flip_tta": True})
    report = (fixture_runs / "reports" / "report.md").read_text()
    assert "`unet` (downscale 2, base_width 8, depth 3, refine.width 8, refine.window 64)" in report
    assert "`resnet_unet` (downscale 1, decoder_width 16, weights , weights_sha256 , encoder resnet18)" in report
    assert "averaged over the image and its horizontal and vertical mirror images" in report
    assert "`unet`: 8 epochs, cosine to 0.003, batch 16, fp32" in report


def test_the_method_sentence_names_the_image_score_the_gate_uses(fixture_runs):
    build(fixture_runs, **{"evaluate.image_score_share": 0.0005})
    report = (fixture_runs / "reports" / "report.md").read_text()
    assert "an image whose score, the mean of its top 0.05% of pixel probabilities, is under it gets an empty mask" in report
    build(fixture_runs)
    assert "an image whose score, its highest pixel probability, is under it" in (fixture_runs / "reports" / "report.md").read_text()


def test_a_models_own_recipe_is_named_and_sets_its_runs_epochs_for_the_convergence_rule(fixture_runs):
    table = build(fixture_runs, **{"models.resnet_unet.train": {"epochs": 64, "val_every": 8}})
    report = (fixture_runs / "reports" / "report.md").read_text()
    assert "`resnet_unet` (its own recipe): 64 epochs, cosine to 0.003, batch 16, fp32" in report
    assert table["runs"]["resnet_unet-bce-seed0-fold0"]["tail_gain"] is None and not table["runs"]["resnet_unet-bce-seed0-fold0"]["converged"]
    assert table["runs"]["unet-bce-seed0-fold0"]["converged"]


def per_class_matrix() -> dict[Run, pd.DataFrame]:
    """One fold, bce and dice: dice finds more of each crack, bce more of each blowhole; 5 fray, 10 free images."""
    classes = ["crack"] * 25 + ["blowhole"] * 25 + ["fray"] * 5 + ["free"] * 10
    rng = np.random.default_rng(0)
    tables = {}
    for loss, crack_tp, blowhole_tp in (("bce", 20, 60), ("dice", 60, 20)):
        defect = np.array(classes) != "free"
        tp = np.where(defect, np.array([crack_tp] * 25 + [blowhole_tp] * 25 + [40] * 5 + [0] * 10) + rng.integers(0, 5, 65), 0)
        tables[Run("unet", loss, 0, 0)] = pd.DataFrame(
            {"id": [f"i{n:02d}" for n in range(65)], "defect_class": classes, "tp": tp, "fp": np.where(defect, 10, 0), "fn": np.where(defect, 80 - tp, 0), "tn": 100, "score": 0.5}
        )
    return tables


def test_per_class_verdicts_pair_the_same_images_and_say_which_loss_to_use_for_which_defect():
    tables = per_class_matrix()
    arms = pool_arms(tables)
    by_class = class_verdicts(arms, list(tables), 500, 0, 0.95)
    assert by_class["crack"]["images"] == 25 and by_class["crack"]["verdicts"][0]["verdict"].startswith("dice beats bce by +")
    assert by_class["blowhole"]["verdicts"][0]["verdict"].startswith("bce beats dice by +")
    assert by_class["fray"] == {"images": 5, "groups": 5, "verdicts": []} and "free" not in by_class
    crack_totals = class_totals(arms)["crack"]
    assert advice(crack_totals, ["unet-bce", "unet-dice"], 500, 0, 0.95) == {
        "best": "unet-dice", "iou": pytest.approx(advice(crack_totals, ["unet-dice"], 500, 0, 0.95)["iou"]), "beats": ["unet-bce"], "cannot_tell": [], "higher_unsettled": {}
    }  # fmt: skip
    assert advice(crack_totals, [], 500, 0, 0.95)["best"] is None


def test_advice_names_a_higher_arm_that_had_not_finished_learning():
    crack_totals = class_totals(pool_arms(per_class_matrix()))["crack"]
    only_bce = advice(crack_totals, ["unet-bce"], 500, 0, 0.95)
    assert only_bce["best"] == "unet-bce" and list(only_bce["higher_unsettled"]) == ["unet-dice"]
    assert only_bce["higher_unsettled"]["unet-dice"] > only_bce["iou"]
    sentence = _advice_sentence("crack", {"images": 25, "groups": 25, **only_bce})
    assert sentence.startswith("- **crack** (25 groups, 25 defective images): `unet-bce` (IoU ")
    assert "Higher but not finished (still learning or stalled): `unet-dice` (IoU " in sentence and sentence.endswith("train it longer before choosing.")
    assert _advice_sentence("crack", {"images": 25, "groups": 25, **only_bce, "higher_unsettled": {"a": 0.9, "b": 0.8}}).endswith("train them longer before choosing.")
    assert "Higher" not in _advice_sentence("crack", {"images": 25, "groups": 25, **advice(crack_totals, ["unet-dice"], 500, 0, 0.95)})


def test_the_gate_sentence_names_the_image_head_where_the_models_have_one():
    assert _score_text(0.0005, [], ["unet"]) == "the mean of its top 0.05% of pixel probabilities"
    assert _score_text(0.0, ["mobilenet_unet"], ["mobilenet_unet"]) == 'the image head\'s "has a defect" probability'
    assert _score_text(0.0, ["mobilenet_unet"], ["mobilenet_unet", "unet"]) == 'the image head\'s "has a defect" probability for `mobilenet_unet`, else its highest pixel probability'


def test_report_advises_per_class_and_says_when_the_data_cannot_tell(tmp_path):
    tables = per_class_matrix()
    for run, table in tables.items():
        write_run(tmp_path, run, 10)
        table.to_csv(tmp_path / "evaluation" / run.name / "per_image.csv", index=False)
    (tmp_path / "summary.json").write_text(json.dumps({"layout": "mtd", "pairs": 65, "folds": 1, "per_fold": [{"train": 1, "val": 1, "test": 65}]}))
    table = build(tmp_path, **{"compare.models": ["unet"], "compare.folds": [0]})
    report = (tmp_path / "reports" / "report.md").read_text()
    assert table["advice"]["crack"]["best"] == "unet-dice" and table["advice"]["blowhole"]["best"] == "unet-bce"
    assert "- **crack** (25 groups, 25 defective images): use `unet-dice`" in report
    assert "- **blowhole** (25 groups, 25 defective images): use `unet-bce`" in report
    assert "- **fray** (5 groups, 5 defective images): the data cannot tell (fewer than 20 defective images or 5 groups)." in report
    assert "- **crack** (25 groups (25 images)): dice beats bce by +" in report


def test_the_stall_reference_is_the_best_run_on_the_same_folds_val_images(fixture_runs):
    low = [0.03, 0.05, 0.1, 0.11, 0.11, 0.11, 0.11, 0.11]
    for (model, loss), tp in TP.items():
        run = Run(model, loss, 0, 1)
        for path in (fixture_runs / "evaluation" / run.name, fixture_runs / "dvclive" / run.name):
            shutil.rmtree(path)
        write_run(fixture_runs, run, tp, val_iou=low)
    table = build(fixture_runs)
    assert {run["status"] for run in table["runs"].values()} == {"converged"}, "every fold-1 run is low alike: no reference says stalled"


def test_the_report_says_what_the_pixel_threshold_maximised(fixture_runs):
    build(fixture_runs)
    assert "the pixel threshold that maximises global defect IoU," in (fixture_runs / "reports" / "report.md").read_text()
    build(fixture_runs, **{"evaluate.threshold_objective": "class_mean"})
    assert "the pixel threshold that maximises the mean of the defect classes' IoUs," in (fixture_runs / "reports" / "report.md").read_text()


def test_the_report_sets_each_arms_false_alarm_interval_beside_the_budget(fixture_runs):
    build(fixture_runs, **{"evaluate.max_false_alarm_rate": 0.05, "evaluate.false_alarm_confidence": 0.8})
    report = (fixture_runs / "reports" / "report.md").read_text()
    (line,) = [line for line in report.splitlines() if line.startswith("False-alarm budget 5%")]
    assert re.search(r"unet-bce 0\.200 \[0\.\d{3}, 0\.\d{3}\]: (over it|the interval spans it)", line), line
    assert "gets an empty mask) set so that the 80% upper confidence bound (Clopper-Pearson) of val's false-alarm rate stays within 5%" in report


def test_the_gate_sentence_reads_once_for_a_point_budget(fixture_runs):
    build(fixture_runs, **{"evaluate.max_false_alarm_rate": 0.05, "evaluate.false_alarm_confidence": 0})
    report = (fixture_runs / "reports" / "report.md").read_text()
    assert "gets an empty mask) that lets at most 5% of val's defect-free images through." in report


def test_the_comparison_names_the_images_it_measured_by_the_hash_of_their_sorted_ids(fixture_runs):
    table = build(fixture_runs)
    ids = sorted(str(i) for path in fixture_runs.glob("evaluation/unet-bce-seed0-fold*/per_image.csv") for i in pd.read_csv(path)["id"])
    assert table["data"]["images"] == len(ids) == 20 and table["data"]["groups"] == 20
    assert table["data"]["ids_sha256"] == hashlib.sha256("".join(f"{image}\n" for image in ids).encode()).hexdigest()


def test_the_report_counts_and_resamples_the_manifests_groups(fixture_runs):
    ids = sorted(str(i) for path in fixture_runs.glob("evaluation/unet-bce-seed0-fold*/per_image.csv") for i in pd.read_csv(path)["id"])
    manifest = pd.DataFrame({"id": ids, "defect_class": "free", "image": "i.png", "mask": "m.png", "group": [f"tile{n // 4}" for n in range(len(ids))]})
    manifest.to_csv(fixture_runs / "manifest.csv", index=False)
    alone = build(fixture_runs)
    settings = {"compare.models": ["unet", "resnet_unet"], "compare.losses": ["bce", "dice"], "compare.folds": [0, 1], "train.epochs": EPOCHS}
    grouped = build_report(params_with(**settings), *(fixture_runs / d for d in ("metrics", "evaluation", "dvclive", "summary.json", "reports")), fixture_runs, fixture_runs / "manifest.csv")
    arm = "resnet_unet-dice"
    assert (grouped["arms"][arm]["groups"], grouped["arms"][arm]["images"], alone["arms"][arm]["groups"]) == (5, 20, 20)
    assert grouped["arms"][arm]["iou"] == alone["arms"][arm]["iou"]
    assert "5 groups (20 test images" in (fixture_runs / "reports" / "report.md").read_text()
