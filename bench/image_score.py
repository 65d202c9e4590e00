"""Which image score tells defective tiles from clean ones best, measured on val maps.

Run: .venv/bin/python bench/image_score.py /tmp/levers/LEVER/val_maps.npz [...]

Reads the val probability maps (at each image's own size) that bench/levers.py saved, and
prints, for the highest pixel probability, the mean of the top share of pixels
(``evaluate.image_score_share``) at several shares, and the share of the area above a
probability, the image AUROC and the recall at 5% false alarms. The test split is never read.
"""

import argparse

import numpy as np

from defectseg.measures.decision import image_score
from defectseg.measures.metrics import image_auroc, recall_at_false_alarm_rate

SHARES = (0.0, 0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02)
AREA_ABOVE = (0.3, 0.5, 0.7)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("maps", nargs="+", help="val_maps.npz files written by bench/levers.py")
    args = parser.parse_args()
    for path in args.maps:
        with np.load(path) as saved:
            count = sum(name.startswith("p") for name in saved.files)
            maps = [saved[f"p{i}"].astype(np.float32) for i in range(count)]
            defective = np.array([saved[f"t{i}"].any() for i in range(count)])
        print(f"{path}: {count} val images, {defective.sum()} with defects")
        scores = {f"top {share:.2%} of pixels" if share else "highest pixel": [image_score(m, share) for m in maps] for share in SHARES}
        scores.update({f"area above {level}": [float((m > level).mean()) for m in maps] for level in AREA_ABOVE})
        for name, values in scores.items():
            values = np.array(values)
            print(f"  {name:22s} AUROC {image_auroc(values, defective):.3f}  recall at 5% false alarms {recall_at_false_alarm_rate(values, defective, 0.05):.3f}")


if __name__ == "__main__":
    main()
