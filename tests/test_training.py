"""The training loop on tiny synthetic data: it learns, resumes exactly, and repeats itself."""

import math
import os
import signal
import subprocess
import tempfile

import numpy as np
import pytest
import torch
from dvclive import Live

from conftest import default_params_dict, override
from defectseg.config.params import parse_params
from defectseg.data.dataset import Split
from defectseg.data.synthetic import make_tile
from defectseg.errors import DataError
from defectseg.foundation.atomic import remove_stale_temporaries
from defectseg.foundation.threads import usable_cores
from defectseg.models.checkpoint import load_checkpoint, save_checkpoint
from defectseg.training.loader import EpochPlan, epoch_items
from defectseg.training.loop import fit
from defectseg.training.losses import build_loss
from defectseg.training.run_spec import RunSpec, TrainingError


def tiny_split(count: int, offset: int) -> Split:
    tiles = [make_tile(7, offset + i, 32, 0.25) for i in range(count)]
    return Split(
        np.stack([t.image for t in tiles]),
        (np.stack([t.mask for t in tiles]) > 0).astype(np.uint8),
        np.array([f"t{offset + i}" for i in range(count)]),
        np.array([t.defect_class for t in tiles]),
    )


def tiny_params(**overrides):
    settings = {
        "preprocess.image_size": 32,
        "models.unet.base_width": 4,
        "models.unet.depth": 2,
        "train.epochs": 4,
        "train.batch_size": 4,
        "train.lr": 0.01,
        "train.device": "cpu",
        **overrides,
    }
    return parse_params(override(default_params_dict(), settings))


def train(tmp_path, params, loss_fn=None, name="run", code=None):
    spec = RunSpec(params.train, "unet", params.models.unet, "dicebce", {}, 0, "data", code or {"defectseg/losses.py": "v1"})
    loss_fn = loss_fn or build_loss("dicebce", params.losses)
    with Live(dir=str(tmp_path / name / "live"), dvcyaml=None, save_dvc_exp=False) as live:
        return fit(spec, loss_fn, tiny_split(12, 0), tiny_split(4, 100), tmp_path / name / "last.pt", live)


def test_short_training_lowers_the_loss(tmp_path):
    result = train(tmp_path, tiny_params(**{"train.epochs": 8}))
    losses = [row["train_loss"] for row in result["history"]]
    assert losses[-1] < losses[0] * 0.9
    assert (tmp_path / "run" / "live" / "plots" / "metrics" / "val" / "iou.tsv").is_file()


def test_same_seed_gives_identical_history(tmp_path):
    params = tiny_params(**{"train.epochs": 2})
    first = train(tmp_path, params, name="a")["history"]
    second = train(tmp_path, params, name="b")["history"]
    assert first == second


def test_bf16_and_fp32_both_train(tmp_path):
    for precision in ("fp32", "bf16"):
        history = train(tmp_path, tiny_params(**{"train.epochs": 2, "train.precision": precision}), name=precision)["history"]
        assert all(np.isfinite(row["train_loss"]) for row in history)


class InterruptAfter:
    """A loss that raises KeyboardInterrupt on its n-th training call, as Ctrl-C would.

    12 train images in batches of 4 make 3 calls an epoch: 11 calls stop epoch 4 midway.
    """

    def __init__(self, loss_fn, calls: int):
        self.loss_fn, self.calls = loss_fn, calls

    def __call__(self, logits, target):
        if logits.requires_grad:
            self.calls -= 1
            if self.calls == 0:
                raise KeyboardInterrupt
        return self.loss_fn(logits, target)


def test_interrupted_run_resumes_from_last_epoch_and_matches_uninterrupted(tmp_path):
    params = tiny_params()
    uninterrupted = train(tmp_path, params, name="whole")["history"]
    loss_fn = build_loss("dicebce", params.losses)
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path, params, InterruptAfter(loss_fn, calls=3 * 3 + 2), name="cut")
    saved = load_checkpoint(tmp_path / "cut" / "last.pt")
    assert len(saved["history"]) == 3
    resumed = train(tmp_path, params, name="cut")["history"]
    assert resumed == uninterrupted


def interrupted_run(tmp_path, params) -> None:
    """A run of ``params`` stopped in its third epoch, its state saved after the second."""
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path, params, InterruptAfter(build_loss("dicebce", params.losses), calls=2 * 3 + 2))


def test_changed_params_start_afresh_with_a_warning(tmp_path, capsys):
    interrupted_run(tmp_path, tiny_params())
    result = train(tmp_path, tiny_params(**{"train.lr": 0.005}))
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: ")]
    assert warnings == [f"warning: {tmp_path / 'run' / 'last.pt'}: saved with other settings or data; training from scratch"]
    assert len(result["history"]) == 4 and result["history"][0]["lr"] == 0.005


def test_changed_code_starts_afresh_naming_the_module(tmp_path, capsys):
    params = tiny_params()
    interrupted_run(tmp_path, params)
    calls = []

    def counting_loss(logits, target):
        calls.append(logits.requires_grad)
        return build_loss("dicebce", params.losses)(logits, target)

    result = train(tmp_path, params, counting_loss, code={"defectseg/losses.py": "v2"})
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "saved by other code (defectseg/losses.py changed); training from scratch" in warnings[0]
    assert calls.count(True) == 4 * 3, "all four epochs trained again"
    assert [row["epoch"] for row in result["history"]] == [1, 2, 3, 4]


def test_nan_loss_stops_with_the_epoch_named(tmp_path):
    def nan_loss(logits, target):
        return logits.mean() * float("nan")

    with pytest.raises(TrainingError, match="epoch 1: loss became nan"):
        train(tmp_path, tiny_params(), nan_loss)


class RunsCode:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_checkpoint_with_pickled_object_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"model": RunsCode()}, tmp_path / "evil.pt")
    with pytest.raises(DataError, match="evil.pt: refused: holds pickled objects, not plain weights: posix.system"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not (tmp_path / "pwned").exists()


def test_truncated_checkpoint_is_refused(tmp_path):
    save_checkpoint(tmp_path / "ok.pt", {"weights": torch.ones(1000)})
    (tmp_path / "cut.pt").write_bytes((tmp_path / "ok.pt").read_bytes()[:500])
    with pytest.raises(DataError, match="cut.pt: not a readable checkpoint"):
        load_checkpoint(tmp_path / "cut.pt")


def test_epoch_keeps_every_defect_image_and_a_fresh_share_of_free_ones():
    split = tiny_split(40, 0)
    has_defect = split.masks.reshape(40, -1).any(axis=1)
    def epoch_indices(share: float, generator: torch.Generator) -> list[int]:
        return [index for index, _ in epoch_items(split, EpochPlan(share), generator)]

    first = epoch_indices(0.5, torch.Generator().manual_seed(1))
    second = epoch_indices(0.5, torch.Generator().manual_seed(2))
    for chosen in (first, second):
        assert set(np.flatnonzero(has_defect)) <= set(chosen)
        assert len(chosen) == has_defect.sum() + round((~has_defect).sum() * 0.5)
    assert first != second
    assert first == epoch_indices(0.5, torch.Generator().manual_seed(1))
    assert epoch_indices(1.0, torch.Generator()) == list(range(40))


def test_too_few_training_images_is_a_clear_error(tmp_path):
    params = tiny_params()
    spec = RunSpec(params.train, "unet", params.models.unet, "dicebce", {}, 0, "data")
    with Live(dir=str(tmp_path / "live"), dvcyaml=None, save_dvc_exp=False) as live:
        with pytest.raises(DataError, match="an epoch would hold 1 image"):
            fit(spec, build_loss("dicebce", params.losses), tiny_split(1, 0), tiny_split(2, 50), tmp_path / "last.pt", live)


def test_crops_hold_defect_pixels_and_validation_uses_whole_images(tmp_path):
    from defectseg.training.augment import build_augment

    params = tiny_params(**{"train.augment.crop_size": 16, "train.epochs": 1})
    augment = build_augment(params.train.augment)
    augment.set_random_seed(0)
    split = tiny_split(12, 0)
    for image, mask in zip(split.images, split.masks):
        out = augment(image=image, mask=mask)
        assert out["image"].shape == (16, 16)
        assert out["mask"].any() or not mask.any()
    assert train(tmp_path, params)["history"][0]["val_iou"] >= 0


def test_equal_states_save_to_equal_bytes(tmp_path):
    state = {"weights": torch.arange(6.0)}
    save_checkpoint(tmp_path / "a.pt", state)
    save_checkpoint(tmp_path / "b.pt", state)
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()


def test_crop_defect_share_sets_how_many_crops_hold_defect():
    from defectseg.training.augment import build_augment

    image = np.full((64, 64), 128, np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[4:8, 4:8] = 1

    def share_with_defect(share: float) -> float:
        augment = build_augment(tiny_params(**{"train.augment.crop_size": 16, "train.augment.crop_defect_share": share}).train.augment)
        augment.set_random_seed(0)
        return float(np.mean([augment(image=image, mask=mask)["mask"].any() for _ in range(200)]))

    assert share_with_defect(1.0) == 1.0
    assert share_with_defect(0.0) < 0.2
    assert 0.4 < share_with_defect(0.5) < 0.75


def test_validation_every_few_epochs_and_after_the_last_keeps_the_best_validated(tmp_path):
    result = train(tmp_path, tiny_params(**{"train.epochs": 5, "train.val_every": 2}))
    assert [("val_iou" in row) for row in result["history"]] == [False, True, False, True, True]
    assert result["best"]["epoch"] in (2, 4, 5)
    logged = (tmp_path / "run" / "live" / "plots" / "metrics" / "val" / "iou.tsv").read_text().splitlines()
    assert [line.split("\t")[0] for line in logged[1:]] == ["1", "3", "4"]


def test_refined_unet_trains_end_to_end(tmp_path):
    params = tiny_params(**{"train.epochs": 2, "models.unet.downscale": 2, "models.unet.depth": 1, "models.unet.refine.width": 4, "models.unet.refine.window": 16})
    result = train(tmp_path, params)
    assert len(result["history"]) == 2 and all(math.isfinite(row["train_loss"]) for row in result["history"])


def test_training_with_loader_workers_gives_identical_history_and_weights(tmp_path):
    runs = {workers: train(tmp_path, tiny_params(**{"train.epochs": 2, "train.loader_workers": workers}), name=f"w{workers}") for workers in (0, 2)}
    assert runs[0]["history"] == runs[2]["history"]
    assert all(torch.equal(runs[0]["best"]["weights"][k], runs[2]["best"]["weights"][k]) for k in runs[0]["best"]["weights"])


def test_ema_keeps_the_average_and_resumes_exactly(tmp_path):
    params = tiny_params(**{"train.ema_decay": 0.9})
    whole = train(tmp_path, params, name="whole")
    plain = train(tmp_path, tiny_params(), name="plain")
    assert whole["history"][0]["train_loss"] == plain["history"][0]["train_loss"]
    assert whole["history"][0]["val_iou"] != plain["history"][0]["val_iou"] or whole["history"][0]["val_loss"] != plain["history"][0]["val_loss"]
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path, params, InterruptAfter(build_loss("dicebce", params.losses), calls=3 * 3 + 2), name="cut")
    resumed = train(tmp_path, params, name="cut")
    assert resumed["history"] == whole["history"]
    assert all(torch.equal(resumed["best"]["weights"][k], whole["best"]["weights"][k]) for k in whole["best"]["weights"])


def test_pinned_threads_give_the_same_model_whatever_else_runs_and_auto_follows_the_other_jobs(tmp_path, monkeypatch):
    """Another live job halves the share of the cores; pinned threads ignore it (same weights)."""
    slots = tmp_path / "slots"
    monkeypatch.setattr(tempfile, "tempdir", str(slots))
    slots.mkdir()
    params = tiny_params(**{"train.epochs": 2, "train.threads": 2})
    alone = train(tmp_path, params, name="alone")
    (slots / f"defectseg-jobs-{os.getuid()}").mkdir()
    for pid in (os.getpid(), os.getppid()):
        (slots / f"defectseg-jobs-{os.getuid()}" / f"{pid}.job").touch()
    beside = train(tmp_path, params, name="beside")
    assert alone["threads"] == beside["threads"] == 2
    assert all(torch.equal(alone["best"]["weights"][k], beside["best"]["weights"][k]) for k in alone["best"]["weights"])
    auto = train(tmp_path, tiny_params(**{"train.epochs": 1, "train.threads": "auto"}), name="auto")
    assert auto["threads"] == max(1, usable_cores() // 2)


def test_state_serializing_when_ctrl_c_comes_is_written_whole_then_interrupted(tmp_path):
    class SendsCtrlC:
        def __reduce__(self):
            os.kill(os.getpid(), signal.SIGINT)
            return (int, (0,))

    save_checkpoint(tmp_path / "last.pt", {"weights": torch.arange(6.0)})
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "last.pt", {"weights": torch.arange(3.0), "extra": SendsCtrlC()})
    assert torch.equal(torch.load(tmp_path / "last.pt", weights_only=False)["weights"], torch.arange(3.0))
    assert list(tmp_path.glob(".*.tmp")) == []


def test_full_disk_is_one_error_naming_the_file_and_keeps_the_previous_checkpoint(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)]).returncode != 0:
        pytest.skip("needs root to mount a small tmpfs (CI runs as root)")
    try:
        save_checkpoint(disk / "model.pt", {"weights": torch.arange(6.0)})
        before = (disk / "model.pt").read_bytes()
        with pytest.raises(DataError, match=rf"^{disk / 'model.pt'}: no space left on device$"):
            save_checkpoint(disk / "model.pt", {"weights": torch.zeros(200_000)})
        assert (disk / "model.pt").read_bytes() == before
        assert sorted(p.name for p in disk.iterdir()) == ["model.pt"]
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_stale_temporaries_of_a_killed_write_are_removed_by_the_next_run(tmp_path):
    folder = tmp_path / "models" / "run"
    folder.mkdir(parents=True)
    (folder / ".last.pt.k1l2.tmp").write_bytes(b"half")
    (folder / ".overlays.x.tmp").mkdir()
    (folder / "model.pt").write_bytes(b"kept")
    assert {p.name for p in remove_stale_temporaries(folder)} == {".last.pt.k1l2.tmp", ".overlays.x.tmp"}
    assert [p.name for p in folder.iterdir()] == ["model.pt"]
