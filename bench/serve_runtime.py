"""Benchmark: the served model's runtime, torch against ONNX Runtime, on this CPU.

Run: .venv/bin/python bench/serve_runtime.py [--model release] [--images DIR] [--batch 8]
Exports the model to ONNX (`defectseg export`), then times the model's forward pass on the same
batches of images at the model's input size in torch (as predict and serve run it: fp32,
channels-last) and in ONNX Runtime, after a warm-up, alternately, and prints images/s for each,
their ratio, and how many mask pixels and tile decisions differ after the saved decision.
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from defectseg.data.dataset import image_array
from defectseg.data.images import IMAGE_SUFFIXES, read_image
from defectseg.evaluation.export import export_model
from defectseg.evaluation.predict import predicted_mask
from defectseg.models.compute import Compute
from defectseg.models.encoder_unet import split_logits
from defectseg.models.inference import model_input, per_image_heads, predict_outputs
from defectseg.models.saved_model import load_decision, load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=Path("release"))
    parser.add_argument("--images", type=Path, default=Path("data/prepared/images"))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    saved, decision = load_model(args.model), load_decision(args.model)
    originals = [read_image(p) for p in sorted(args.images.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES][: args.batch * 8]
    batch = image_array([model_input(saved, o) for o in originals])
    compute = Compute(torch.device("cpu"), channels_last=True)
    with tempfile.TemporaryDirectory() as folder:
        onnx_path = export_model(args.model, "onnx", Path(folder) / "model.onnx")
        session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])

    def run_torch() -> tuple[np.ndarray, list]:
        probabilities, heads = predict_outputs(saved, batch, args.batch, compute)
        return probabilities, per_image_heads(heads, len(batch))

    def run_onnx() -> tuple[np.ndarray, list]:
        outputs = [session.run(None, {"pixels": batch[i : i + args.batch, None].astype(np.float32)})[0] for i in range(0, len(batch), args.batch)]
        logits, heads = split_logits(torch.from_numpy(np.concatenate(outputs)))
        return torch.sigmoid(logits).squeeze(1).numpy(), per_image_heads(None if heads is None else torch.sigmoid(heads).numpy(), len(batch))

    times = {"torch": [], "onnxruntime": []}
    results = {}
    for name, run in (("torch", run_torch), ("onnxruntime", run_onnx)):
        results[name] = run()  # warm-up
    for _ in range(args.rounds):
        for name, run in (("torch", run_torch), ("onnxruntime", run_onnx)):
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    rates = {name: len(batch) / float(np.median(t)) for name, t in times.items()}
    masks = {name: [predicted_mask(o, p, h, decision)[0] for o, p, h in zip(originals, *results[name])] for name in results}
    pixels = sum(int((a != b).sum()) for a, b in zip(masks["torch"], masks["onnxruntime"]))
    tiles = sum(bool(a.any()) != bool(b.any()) for a, b in zip(masks["torch"], masks["onnxruntime"]))
    print(f"{len(batch)} images at {batch.shape[1:]} px, batches of {args.batch}, {torch.get_num_threads()} torch threads")
    for name, rate in rates.items():
        print(f"{name}: {rate:.1f} images/s (median of {args.rounds})")
    print(f"onnxruntime / torch = {rates['onnxruntime'] / rates['torch']:.2f}; masks differ in {pixels} pixels and {tiles} tile decisions")


if __name__ == "__main__":
    main()
