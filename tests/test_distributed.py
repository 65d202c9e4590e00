"""DistributedDataParallel for real: 2 CPU processes under torchrun (gloo) through the train stage."""

import json

import pytest

from conftest import DvcRepo

TINY = {
    "data.synthetic.count": 60,
    "data.synthetic.tile_size": 32,
    "preprocess.image_size": 32,
    "models.unet.base_width": 4,
    "models.unet.depth": 2,
    "train.epochs": 6,
    "train.batch_size": 8,
    "train.lr": 0.01,
    "compare.losses": ["dicebce"],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    repo = DvcRepo(tmp_path_factory.mktemp("ddp"))
    repo.set_params(**TINY)
    repo.commit("tiny")
    repo.run("dvc", "repro", "preprocess")
    results = {}
    for processes in (1, 2):
        repo.set_params(**{"train.processes": processes})
        result = repo.run("dvc", "repro", "train@unet-dicebce-0-0")
        history = (repo.root / "dvclive" / "unet-dicebce-seed0-fold0" / "plots" / "metrics" / "train" / "loss.tsv").read_text()
        results[processes] = {
            "stderr": result.stderr,
            "summary": json.loads((repo.root / "dvclive" / "unet-dicebce-seed0-fold0" / "metrics.json").read_text()),
            "losses": [float(line.split("\t")[1]) for line in history.splitlines()[1:]],
            "model": (repo.root / "models" / "unet-dicebce-seed0-fold0" / "model.json").is_file(),
        }
    return results


def test_two_processes_train_and_only_rank_0_writes(runs):
    two = runs[2]
    assert two["model"] and len(two["losses"]) == TINY["train.epochs"]
    assert two["stderr"].count("epoch 6/6") == 1, "only rank 0 reports"


def test_two_processes_match_one_within_noise(runs):
    one, two = runs[1]["losses"], runs[2]["losses"]
    assert two[-1] < two[0] * 0.9, "distributed training must learn"
    assert abs(two[-1] - one[-1]) / one[-1] < 0.15
    assert abs(runs[2]["summary"]["val"]["loss"] - runs[1]["summary"]["val"]["loss"]) / runs[1]["summary"]["val"]["loss"] < 0.15
