"""What the image gate and the pixel threshold's objective cost each defect class, on val maps.

Run: .venv/bin/python bench/gate.py /tmp/levers/LEVER/val_maps.npz [...] [--share 0.0005] [--false-alarms 0.05] [--confidence 0 0.8 0.9]

Reads the val probability maps (at each image's own size) that bench/levers.py saved and
chooses the decision on them as evaluate does, once per ``evaluate.threshold_objective``:
the pixel threshold that maximises pooled IoU or the mean of the classes' IoUs, and the
image gate (mean of the top ``--share`` of pixels) that flags at most ``--false-alarms`` of
the defect-free tiles. Prints pooled and per-class IoU with that gate and without any gate
(threshold only), and, per class, the share of defective tiles the gate lets through. The
test split is never read; both figures are on the maps the threshold was chosen on.

Then, for each ``--confidence`` (``evaluate.false_alarm_confidence``), the gate that keeps
the upper confidence bound of the val false-alarm rate within ``--false-alarms``: how many of
val's defect-free tiles it flags, that bound, and the recall it leaves overall and per class
(what keeping the promise on new tiles costs). Maps saved with the image head's probabilities
gate on them, as evaluate does for such a model.
"""

import argparse

import numpy as np

from defectseg.evaluation.evaluate import choose_threshold
from defectseg.measures.decision import Decision, false_alarm_upper_bound, gate_for_false_alarms, image_score
from defectseg.measures.metrics import Counts, global_iou, per_class_iou


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("maps", nargs="+", help="val_maps.npz files written by bench/levers.py")
    parser.add_argument("--share", type=float, default=0.0005, help="image score: mean of this share of the highest pixels")
    parser.add_argument("--false-alarms", type=float, default=0.05, help="share of defect-free val tiles the gate may flag")
    parser.add_argument("--steps", type=int, default=99, help="thresholds tried for the pixel threshold")
    parser.add_argument("--confidence", type=float, nargs="*", default=[0.0, 0.5, 0.8, 0.9, 0.95], help="evaluate.false_alarm_confidence values to compare")
    args = parser.parse_args()
    for path in args.maps:
        with np.load(path) as saved:
            count = sum(name.startswith("p") for name in saved.files)
            maps = [saved[f"p{i}"].astype(np.float32) for i in range(count)]
            truth = [saved[f"t{i}"].astype(bool) for i in range(count)]
            classes = saved["classes"]
            heads = saved["heads"] if "heads" in saved.files else None
        defective = np.array([t.any() for t in truth])
        scores = heads if heads is not None else np.array([image_score(m, args.share) for m in maps])
        gate = gate_for_false_alarms(scores[~defective], args.false_alarms)
        print(f"{path}: {count} val images, {defective.sum()} with defects; gate {gate:.3f}")
        for objective, by_class in (("pooled", None), ("class_mean", classes)):
            threshold = choose_threshold(maps, truth, args.steps, by_class)
            print(f"  threshold_objective {objective}: pixel threshold {threshold:.2f}")
            for name, image_threshold in (("with the gate", gate), ("without a gate", 0.0)):
                decision = Decision(threshold, image_threshold=image_threshold, score_top_share=args.share)
                counts = Counts.of([decision.apply(m) for m in maps], truth)
                per_class = ", ".join(f"{k} {v:.3f}" for k, v in per_class_iou(counts, classes).items())
                print(f"    {name:15s} pooled IoU {global_iou(counts):.3f}; {per_class}")
        flagged = scores > gate
        passed = ", ".join(f"{k} {flagged[defective & (classes == k)].mean():.2f}" for k in sorted(set(classes[defective].tolist())))
        print(f"  defective tiles the gate flags, per class: {passed}")
        free = int((~defective).sum())
        for confidence in args.confidence:
            gate = gate_for_false_alarms(scores[~defective], args.false_alarms, confidence)
            flagged = scores > gate
            bound = false_alarm_upper_bound(int(flagged[~defective].sum()), free, 0.95)
            per_class = ", ".join(f"{k} {flagged[defective & (classes == k)].mean():.2f}" for k in sorted(set(classes[defective].tolist())))
            print(f"  confidence {confidence:.2f}: flags {flagged[~defective].sum()} of {free} defect-free tiles (95% upper bound "
                  f"{bound:.3f}), recall {flagged[defective].mean():.3f}; per class {per_class}")


if __name__ == "__main__":
    main()
