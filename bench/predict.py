"""Benchmark: `defectseg predict` throughput (images/s) on CPU with a trained model.

Run: .venv/bin/python bench/predict.py [--model models/unet-dicebce-seed0-fold0] [--images data/prepared/synthetic/images]
Times the whole predict call in-process (read, resize, model, resize back, threshold,
PNG and CSV writing), after one warm-up call, in fp32 and bf16, and prints images/s.
"""

import argparse
import tempfile
import time
from pathlib import Path

from defectseg.evaluation.predict import predict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=Path("models/unet-dicebce-seed0-fold0"))
    parser.add_argument("--images", type=Path, default=Path("data/prepared/synthetic/images"))
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out:
        predict(args.model, [args.images], Path(out) / "warm-up", 0.5, args.batch_size, False, "cpu")
        for precision in ("fp32", "bf16"):
            start = time.perf_counter()
            outcome = predict(args.model, [args.images], Path(out) / precision, 0.5, args.batch_size, False, "cpu", precision)
            elapsed = time.perf_counter() - start
            count = len(outcome.rows)
            print(f"{precision}: {count} images in {elapsed:.2f} s: {count / elapsed:.1f} images/s (batch {args.batch_size})")


if __name__ == "__main__":
    main()
