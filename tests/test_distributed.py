"""DistributedDataParallel for real: 2 CPU processes under torchrun (gloo) through the train stage,
on one node, and over two nodes (two checkouts on 127.0.0.1 meeting at a c10d rendezvous).

Four trainings, each a torchrun of processes that import torch: over a minute on 2 cores, so these
run with ``pytest -m slow`` (``tests/test_resume_agreement.py`` keeps the processes' agreement on
where to resume in the default run)."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import DvcRepo, command_env, free_port

pytestmark = pytest.mark.slow

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
        results[processes] = outcome(repo, repo.run("dvc", "repro", "train@unet-dicebce-0-0").stderr)
    results["two nodes"] = two_node_run(repo, tmp_path_factory.mktemp("node1"))
    return results


RUN = "unet-dicebce-seed0-fold0"


def outcome(repo: DvcRepo, stderr: str) -> dict:
    history = (repo.root / "dvclive" / RUN / "plots" / "metrics" / "train" / "loss.tsv").read_text()
    return {
        "stderr": stderr,
        "summary": json.loads((repo.root / "dvclive" / RUN / "metrics.json").read_text()),
        "losses": [float(line.split("\t")[1]) for line in history.splitlines()[1:]],
        "model": (repo.root / "models" / RUN / "model.json").is_file(),
    }


def two_node_run(repo: DvcRepo, node1: Path) -> dict:
    """``train.nodes: 2``, one process each: node 0 is ``repo`` running the train stage under DVC,
    node 1 a clone at the same commit with the same params and preprocessed data running
    ``defectseg join-training``; both reach the rendezvous on 127.0.0.1."""
    repo.set_params(**{"train.processes": 1, "train.nodes": 2})
    shutil.rmtree(node1)
    subprocess.run(["git", "clone", "-q", str(repo.root), str(node1)], check=True)
    shutil.copy(repo.root / "params.yaml", node1 / "params.yaml")
    shutil.copytree(repo.root / "data" / "preprocessed", node1 / "data" / "preprocessed")
    shutil.copytree(repo.root / "data" / "prepared", node1 / "data" / "prepared")
    env = dict(command_env(), DEFECTSEG_RENDEZVOUS=f"127.0.0.1:{free_port()}")
    nodes = [
        subprocess.Popen(["dvc", "repro", "train@unet-dicebce-0-0"], cwd=repo.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
        subprocess.Popen(["defectseg", "join-training", "--model", "unet", "--loss", "dicebce", "--seed", "0", "--fold", "0", "--node-rank", "1"],
                         cwd=node1, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),  # fmt: skip
    ]
    outputs = [node.communicate(timeout=300) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs
    result = outcome(repo, outputs[0][1])
    result["node1 stderr"] = outputs[1][1]
    result["node1 wrote"] = sorted(str(path.relative_to(node1)) for folder in ("models", "dvclive") if (node1 / folder).exists() for path in (node1 / folder).rglob("*"))
    return result


def test_two_processes_train_and_only_rank_0_writes(runs):
    two = runs[2]
    assert two["model"] and len(two["losses"]) == TINY["train.epochs"]
    assert two["stderr"].count("epoch 6/6") == 1, "only rank 0 reports"


def test_two_processes_match_one_within_noise(runs):
    one, two = runs[1]["losses"], runs[2]["losses"]
    assert two[-1] < two[0] * 0.9, "distributed training must learn"
    assert abs(two[-1] - one[-1]) / one[-1] < 0.15
    assert abs(runs[2]["summary"]["val"]["loss"] - runs[1]["summary"]["val"]["loss"]) / runs[1]["summary"]["val"]["loss"] < 0.15


def test_two_nodes_train_as_one_process_does_and_only_node_0_writes(runs):
    one, nodes = runs[1], runs["two nodes"]
    assert nodes["model"] and len(nodes["losses"]) == TINY["train.epochs"]
    assert nodes["losses"][-1] < nodes["losses"][0] * 0.9, "two-node training must learn"
    assert abs(nodes["losses"][-1] - one["losses"][-1]) / one["losses"][-1] < 0.15
    assert abs(nodes["summary"]["val"]["loss"] - one["summary"]["val"]["loss"]) / one["summary"]["val"]["loss"] < 0.15
    assert (nodes["stderr"] + nodes["node1 stderr"]).count("epoch 6/6") == 1, "only the writer reports"
    assert nodes["node1 wrote"] == [], "node 1 writes no checkpoint, log or model"


def test_two_nodes_give_the_one_node_two_process_losses(runs):
    """The same world of 2 processes, so the same shards and batches: only the transport differs."""
    assert runs["two nodes"]["losses"] == pytest.approx(runs[2]["losses"], rel=1e-4)
