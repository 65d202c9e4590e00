"""Benchmark: the project's training loop against a seed-style loop, same model and size.

Run: .venv/bin/python bench/train_throughput.py [--source PATH] [--steps N]

Both loops train the seed's U-Net (widths 64-512) at 224x224 with the same batch size:
- seed style: a Dataset that opens, resizes and binarizes the image files with PIL on
  every step, num_workers=0, float32;
- project: preprocessed uint8 arrays (no decoding), albumentations, bf16 autocast,
  channels-last, all cores.
Then a short training run on synthetic tiles with and without bf16, to show what bf16
does to val IoU. Every figure is measured in this one run.
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from dvclive import Live
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from defectseg.config.params import parse_params
from defectseg.data.dataset import Normalization, SegmentationDataset, load_fold
from defectseg.data.prepare import prepare_dataset
from defectseg.data.preprocess import preprocess
from defectseg.models.compute import Compute
from defectseg.models.unet import UNet
from defectseg.training.augment import build_augment
from defectseg.training.loop import fit
from defectseg.training.losses import build_loss
from defectseg.training.run_spec import RunSpec

SIZE = 224


class SeedDataset(Dataset):
    """The seed's way: decode, resize and binarize the files on every access."""

    def __init__(self, manifest: pd.DataFrame):
        self.pairs = list(zip(manifest["image"], manifest["mask"]))

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int):
        image_path, mask_path = self.pairs[index]
        image = np.asarray(Image.open(image_path).convert("L").resize((SIZE, SIZE), Image.BILINEAR), np.float32) / 255
        mask = np.asarray(Image.open(mask_path).convert("L").resize((SIZE, SIZE), Image.NEAREST)) > 127
        return torch.from_numpy(image)[None], torch.from_numpy(mask.astype(np.float32))[None]


def images_per_second(model, loader, loss_fn, compute: Compute, steps: int) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    batches = iter(loader)
    for step in range(steps + 1):
        if step == 1:
            start, seen = time.perf_counter(), 0
        images, masks = next(batches)
        with compute.autocast():
            logits = model(compute.put(images))
        loss = loss_fn(logits.float(), masks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step >= 1:
            seen += len(images)
    return seen / (time.perf_counter() - start)


def bf16_accuracy(raw: dict, tmp: Path) -> dict[str, float]:
    """Best val IoU of a short synthetic run in fp32 and in bf16."""
    raw = yaml.safe_load(yaml.safe_dump(raw))
    raw["data"]["source"] = "synthetic"
    raw["data"]["synthetic"].update(count=160, tile_size=64)
    raw["preprocess"]["image_size"] = 64
    raw["train"].update(epochs=8, batch_size=16, device="cpu")
    raw["models"]["unet"].update(base_width=8, depth=3)
    results = {}
    for precision in ("fp32", "bf16"):
        raw["train"]["precision"] = precision
        params = parse_params(raw)
        prepare_dataset(params.data, 1, tmp / "syn" / "prepared", tmp / "cache")
        preprocess(tmp / "syn" / "prepared" / "manifest.csv", params.preprocess, tmp / "syn" / "pre")
        spec = RunSpec(params.train, "unet", params.models.unet, "dicebce", {}, 0, precision)
        with Live(dir=str(tmp / precision), dvcyaml=None, save_dvc_exp=False) as live:
            fold = load_fold(tmp / "syn" / "pre", tmp / "syn" / "prepared" / "manifest.csv", 0)
            result = fit(spec, build_loss("dicebce", params.losses), fold["train"], fold["val"], tmp / precision / "last.pt", live)
        results[precision] = result["best"]["val_iou"]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", default="../shared/datasets/magnetic-tile")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    raw = yaml.safe_load(Path("params.yaml").read_text())
    raw["data"]["source"] = args.source if Path(args.source).exists() else "synthetic"
    raw["preprocess"]["image_size"] = SIZE
    params = parse_params(raw)
    loss_fn = build_loss("dicebce", params.losses)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        prepare_dataset(params.data, 1, tmp / "prepared", tmp / "cache")
        manifest = pd.read_csv(tmp / "prepared" / "manifest.csv")
        manifest = manifest[manifest["fold0"] == "train"]
        preprocess(tmp / "prepared" / "manifest.csv", params.preprocess, tmp / "pre")
        train = load_fold(tmp / "pre", tmp / "prepared" / "manifest.csv", 0)["train"]
        generator = torch.Generator().manual_seed(0)

        torch.manual_seed(0)
        seed_loader = DataLoader(SeedDataset(manifest), batch_size=args.batch_size, shuffle=True, num_workers=0, generator=generator)
        seed = images_per_second(UNet(64, 3), seed_loader, loss_fn, Compute(torch.device("cpu")), args.steps)

        torch.manual_seed(0)
        compute = Compute(torch.device("cpu"), bf16=True, channels_last=True)
        dataset = SegmentationDataset(train, Normalization.of(train.images), build_augment(params.train.augment))
        loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, generator=generator)
        ours = images_per_second(compute.place(UNet(64, 3)), loader, loss_fn, compute, args.steps)

        accuracy = bf16_accuracy(raw, tmp)
    print(f"data: {raw['data']['source']}, {SIZE}x{SIZE}, batch {args.batch_size}, U-Net widths 64-512, {torch.get_num_threads()} threads")
    print(f"seed-style loop (PIL decode every step, fp32): {seed:.2f} img/s")
    print(f"project loop (arrays, bf16, channels-last):     {ours:.2f} img/s")
    print(f"speed-up: {ours / seed:.2f}x")
    print(f"short synthetic run, best val IoU: fp32 {accuracy['fp32']:.4f}, bf16 {accuracy['bf16']:.4f}")


if __name__ == "__main__":
    main()
