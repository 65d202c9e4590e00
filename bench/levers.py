"""Training levers on the Magnetic Tile val split: what each does to a run, measured on val only.

Run: .venv/bin/python bench/levers.py --config configs/mtd.yaml --levers configs/levers-mtd.yaml --out /tmp/levers [--data FOLDER] [--only NAME ...]

Prepares and preprocesses the data once per preprocess setting (the single split of ``data.split``, fold 0), then
for each lever (a name and its params overrides, applied after the configs) trains one
run with the project's own ``train_run`` and scores its val split at each image's own
size, as evaluate does: pooled IoU, mean image IoU, recall at the false-alarm budget,
image AUROC, each class's IoU (and IoU and recall with and without flip test-time
augmentation), minutes of training, and whether it converged (``convergence``). The test split is never read. Each lever's row goes to
``OUT/<name>/val.json`` and its val probability maps to ``OUT/<name>/val_maps.npz``
and, from a model with an image head, its val head probabilities (for choosing the image
score and the gate without retraining), each row with the date, machine,
commit and the MD5 of the code this script runs. ``OUT/levers.json`` gathers the rows of
every lever in OUT (a lever run again replaces its row); ``defectseg tables`` renders it
where a document cites its folder.
"""

import argparse
import hashlib
import json
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from defectseg.cli.results_tables import file_hashes, machine
from defectseg.config.params import apply_overrides, parse_params
from defectseg.config.runs import Run
from defectseg.data.dataset import load_split, split_fold
from defectseg.data.manifest import read_manifest
from defectseg.data.prepare import prepare_dataset
from defectseg.data.preprocess import preprocess
from defectseg.evaluation.evaluate import choose_decision, measure, native_split
from defectseg.models.compute import Compute, pick_device
from defectseg.models.inference import predict_outputs
from defectseg.models.saved_model import load_model
from defectseg.report.convergence import convergence
from defectseg.training.code_fingerprint import import_closure
from defectseg.training.train_run import train_run

REPO = Path(__file__).resolve().parents[1]


def params_for(configs: list[Path], overrides: dict):
    raw = yaml.safe_load(Path("params.yaml").read_text())
    merged = {}
    for config in configs:
        merged.update(yaml.safe_load(config.read_text()))
    return parse_params(apply_overrides(raw, {**merged, **overrides}))


def prepared(params, out: Path) -> tuple[Path, Path]:
    settings = json.dumps(params.preprocess.model_dump(), sort_keys=True)
    data = out / "data" / f"preprocess-{hashlib.sha256(settings.encode()).hexdigest()[:10]}"
    if not (data / "preprocessed" / "info.json").exists():
        prepare_dataset(params.data, 1, out_dir=data / "prepared", cache_dir=out / "data" / "cache")
        preprocess(data / "prepared" / "manifest.csv", params.preprocess, out_dir=data / "preprocessed")
    return data / "preprocessed", data / "prepared" / "manifest.csv"


def val_history(live_dir: Path) -> pd.Series:
    table = pd.read_csv(live_dir / "plots" / "metrics" / "val" / "iou.tsv", sep="\t")
    return pd.Series(table["iou"].to_numpy(), index=table["step"].to_numpy() + 1)


def score_val(model_dir: Path, pairs: Path, manifest_path: Path, params, flip_tta: bool) -> tuple[dict, object]:
    """Val metrics at native size, with or without flip test-time augmentation, and the native maps."""
    manifest = read_manifest(manifest_path)
    val = split_fold(load_split(pairs), manifest, manifest_path, 0)["val"]
    compute = Compute(pick_device(params.evaluate.device, "evaluate.device"))
    probabilities, heads = predict_outputs(load_model(model_dir), val.images, params.evaluate.batch_size, compute, flip_tta)
    native = native_split(val, probabilities, manifest, params.preprocess.mask_threshold, params.evaluate.image_score_share, heads)
    evaluate = params.evaluate.model_copy(update={"flip_tta": flip_tta})
    metrics, _, _ = measure(native, choose_decision(native, evaluate), evaluate.max_false_alarm_rate)
    return metrics, native


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", action="append", required=True, type=Path)
    parser.add_argument("--levers", required=True, type=Path, help="YAML: lever name -> {model, loss, overrides}")
    parser.add_argument("--data", default="../shared/datasets/magnetic-tile")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--only", nargs="*", help="run only these levers, in this order")
    args = parser.parse_args()
    levers = yaml.safe_load(args.levers.read_text())
    provenance = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "commit": subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip(),
        "code": file_hashes(list(import_closure(Path(__file__))), REPO),
    }
    for name in args.only or list(levers):
        lever = levers[name]
        overrides = {"data.source": str(Path(args.data).resolve()), "compare.folds": [0], **lever.get("overrides", {})}
        params = params_for(args.config, overrides)
        pairs, manifest = prepared(params, args.out)
        folder = args.out / name
        start = time.perf_counter()
        train_run(params, Run(lever["model"], lever["loss"], 0, 0), pairs, manifest, folder / "model", folder / "live", folder / "scratch")
        minutes = (time.perf_counter() - start) / 60
        metrics, native = score_val(folder / "model", pairs, manifest, params, params.evaluate.flip_tta)
        plain, _ = score_val(folder / "model", pairs, manifest, params, False)
        flipped, _ = score_val(folder / "model", pairs, manifest, params, True)
        history = val_history(folder / "live")
        row = {
            "lever": name,
            "val_iou": metrics["iou"],
            "mean_image_iou": metrics["mean_image_iou"],
            "recall_at_fa": metrics["recall_at_false_alarm_rate"],
            "image_auroc": metrics["image_auroc"],
            **{name: metrics["per_class_iou"].get(name) for name in ("crack", "blowhole", "uneven", "break", "fray")},
            "val_iou_without_tta": plain["iou"],
            "recall_at_fa_without_tta": plain["recall_at_false_alarm_rate"],
            "val_iou_with_tta": flipped["iou"],
            "recall_at_fa_with_tta": flipped["recall_at_false_alarm_rate"],
            "train_minutes": round(minutes, 1),
            "best_epoch_val_iou": float(history.max()),
            **convergence(history, params.train.epochs),
            "overrides": lever.get("overrides", {}),
            **provenance,
        }
        (folder / "val.json").write_text(json.dumps({"row": row, "metrics": metrics, "history": history.to_dict()}, indent=1))
        np.savez_compressed(folder / "val_maps.npz", **{f"p{i}": p.astype(np.float16) for i, p in enumerate(native.probabilities)},
                            **{f"t{i}": t for i, t in enumerate(native.truth)}, classes=native.split.classes,
                 **({} if native.head_scores is None else {"heads": np.asarray(native.head_scores)}))  # fmt: skip
        rows = [json.loads(path.read_text())["row"] for path in args.out.glob("*/val.json")]
        rows.sort(key=lambda r: list(levers).index(r["lever"]) if r["lever"] in levers else len(levers))
        (args.out / "levers.json").write_text(json.dumps({"rows": rows}, indent=1))
        print(json.dumps({k: v for k, v in row.items() if k != "code"}), flush=True)


if __name__ == "__main__":
    main()
