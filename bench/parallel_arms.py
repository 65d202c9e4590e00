"""Benchmark: training speed on the device and the CPU, and arms side by side against one arm.

Run: .venv/bin/python bench/parallel_arms.py [--config configs/mtd.yaml ...] [--data FOLDER] [--arms 2] [--epochs 2] [--unbudgeted]

On the Magnetic Tile set with the given configuration (configs/mtd.yaml by default):
1. training images per second of the model's train step, measured in this process on the
   device (CUDA where there is one) and on the CPU, and their ratio;
2. the wall time of one arm's train stage (the project's own ``src/stages/train.py``, as
   DVC runs it), of N arms one after the other, and of N arms side by side, each a
   separate process holding a job slot (``threads``), so each takes its share of the cores
   (``train.threads: auto`` here; the default pins the count, so results never depend on what ran beside).
   With ``--unbudgeted`` it also runs the N arms side by side with every process taking all
   the cores (each in its own slot folder), which is what the budget prevents.
Every figure is measured in this one run; nothing is compared across machines.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

from defectseg.config.params import apply_overrides, parse_params
from defectseg.data.dataset import load_fold
from defectseg.data.prepare import prepare_dataset
from defectseg.data.preprocess import preprocess
from defectseg.training.distributed import World
from defectseg.training.loop import train_one_epoch
from defectseg.training.losses import build_loss
from defectseg.training.run_spec import RunSpec, seed_epoch
from defectseg.training.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]


def workspace(configs: list[Path], data: str, epochs: int, folder: Path, device: str):
    """A folder laid out as the pipeline's (params.yaml, data/prepared, data/preprocessed) for ``epochs``-epoch arms."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    overrides = {}
    for config in configs:
        overrides.update(yaml.safe_load(config.read_text()))
    overrides.update({"data.source": str(Path(data).resolve()), "compare.folds": [0], "train.epochs": epochs, "train.val_every": epochs, "train.device": device, "train.threads": "auto"})
    if overrides.get("train.schedule") == "onecycle":
        overrides["train.warmup_epochs"] = 1
    params = parse_params(apply_overrides(raw, overrides))
    (folder / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    prepare_dataset(params.data, 1, out_dir=folder / "data" / "prepared", cache_dir=folder / "data" / "cache")
    preprocess(folder / "data" / "prepared" / "manifest.csv", params.preprocess, out_dir=folder / "data" / "preprocessed")
    return params


def images_per_second(params, folder: Path, device: str, steps: int) -> float:
    """Training images per second of the configured model on ``device``, after a warm-up epoch."""
    train = load_fold(folder / "data" / "preprocessed", folder / "data" / "prepared" / "manifest.csv", 0)["train"]
    settings = params.train.model_copy(update={"device": device})
    model = params.compare.models[0]
    spec = RunSpec(settings, model, getattr(params.models, model), "dicebce", {}, 0, "bench")
    trainer = Trainer.build(spec, train, folder / "unused.pt", World())
    loss_fn = build_loss("dicebce", params.losses)
    trainer.sampler.set_epoch(seed_epoch(0, 1))
    train_one_epoch(trainer, loss_fn, 1, World())
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    images = 0
    for epoch in range(2, 2 + steps):
        trainer.sampler.set_epoch(seed_epoch(0, epoch))
        train_one_epoch(trainer, loss_fn, epoch, World())
        images += len(trainer.loader) * trainer.batch_size
    if device == "cuda":
        torch.cuda.synchronize()
    return images / (time.perf_counter() - start)


def run_arms(folder: Path, model: str, seeds: list[int], side_by_side: bool, shared_slots: bool = True) -> float:
    """Wall time of the train stage for one arm per seed, all at once or one after the other."""
    shutil.rmtree(folder / "models", ignore_errors=True)
    shutil.rmtree(folder / "dvclive", ignore_errors=True)
    base = {**os.environ, "PYTHONPATH": str(REPO / "src"), "NO_ALBUMENTATIONS_UPDATE": "1"}

    def start(seed: int) -> subprocess.Popen:
        env = base if shared_slots else {**base, "TMPDIR": tempfile.mkdtemp(prefix=f"slots{seed}-")}
        command = [sys.executable, str(REPO / "src" / "stages" / "train.py"), "--model", model, "--loss", "dicebce", "--seed", str(seed), "--fold", "0"]
        return subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def wait(process: subprocess.Popen) -> None:
        _, errors = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"train stage failed:\n{errors[-2000:]}")

    begin = time.perf_counter()
    if side_by_side:
        for process in [start(seed) for seed in seeds]:
            wait(process)
    else:
        for seed in seeds:
            wait(start(seed))
    return time.perf_counter() - begin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", action="append", type=Path, help="YAML of dotted params keys (default: configs/mtd.yaml)")
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "datasets" / "magnetic-tile"))
    parser.add_argument("--arms", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2, help="epochs of each arm")
    parser.add_argument("--speed-epochs", type=int, default=1, help="timed epochs of the images-per-second measure")
    parser.add_argument("--unbudgeted", action="store_true", help="also run the arms side by side, each taking every core")
    args = parser.parse_args()
    configs = args.config or [REPO / "configs" / "mtd.yaml"]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with tempfile.TemporaryDirectory(prefix="parallel-arms-") as tmp:
        folder = Path(tmp)
        params = workspace(configs, args.data, args.epochs, folder, device)
        model = params.compare.models[0]
        height, width = params.preprocess.height_width
        print(f"{model}, {height}x{width}, batch {params.train.batch_size}, {params.train.precision}; {os.cpu_count()} cores; device {device}")
        speeds = {name: images_per_second(params, folder, name, args.speed_epochs) for name in dict.fromkeys([device, "cpu"])}
        for name, speed in speeds.items():
            print(f"training images/s on {name}: {speed:.1f}")
        if device != "cpu":
            print(f"{device} / cpu: {speeds[device] / speeds['cpu']:.1f}x")
        seeds = list(range(args.arms))
        one = run_arms(folder, model, seeds[:1], side_by_side=False)
        after = run_arms(folder, model, seeds, side_by_side=False)
        beside = run_arms(folder, model, seeds, side_by_side=True)
        print(f"train stage, {args.epochs} epochs per arm: one arm {one:.0f} s; {args.arms} arms one after the other {after:.0f} s; side by side {beside:.0f} s")
        print(f"side by side / one after the other: {beside / after:.2f}; side by side / one arm: {beside / one:.2f}")
        if args.unbudgeted:
            unbudgeted = run_arms(folder, model, seeds, side_by_side=True, shared_slots=False)
            print(f"side by side, every process taking all cores: {unbudgeted:.0f} s ({unbudgeted / after:.2f} of one after the other)")


if __name__ == "__main__":
    main()
