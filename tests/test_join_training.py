"""``defectseg join-training`` refuses, in one line, a node that could not join the training:
a run outside the comparison, a one-node training, a node number out of range, a folder
that is not a checkout. (The two-node training itself: tests/test_distributed.py.)"""

import pytest
import yaml

from conftest import default_params_dict
from defectseg.cli.commands import main
from defectseg.config.params import apply_overrides


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """A folder with a params.yaml of a two-node training and no stage scripts."""
    monkeypatch.chdir(tmp_path)

    def write(**overrides):
        params = apply_overrides(default_params_dict(), {"train.nodes": 2, "compare.losses": ["bce", "dicebce"], **overrides})
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))

    write()
    return write


def refusal(capsys, *flags: str) -> str:
    with pytest.raises(SystemExit) as stopped:
        main(["join-training", *flags])
    assert stopped.value.code != 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


RUN = ["--model", "unet", "--loss", "dicebce", "--seed", "0", "--fold", "0"]


def test_a_run_outside_the_comparison_is_refused_naming_the_matrix(checkout, capsys):
    line = refusal(capsys, "--model", "unet", "--loss", "dice", "--seed", "0", "--fold", "0")
    assert line.startswith("error: params.yaml: unet-dice-seed0-fold0 is not a run of this comparison") and "'bce', 'dicebce'" in line


def test_an_unknown_model_name_is_refused_by_the_parser(checkout, capsys):
    with pytest.raises(SystemExit):
        main(["join-training", "--model", "vit", "--loss", "bce", "--seed", "0", "--fold", "0"])
    assert "invalid choice: 'vit'" in capsys.readouterr().err


def test_a_one_node_training_is_refused(checkout, capsys):
    checkout(**{"train.nodes": 1})
    assert refusal(capsys, *RUN) == "error: params.yaml: train.nodes is 1: this training spans no other node"


def test_a_node_rank_outside_the_nodes_is_refused(checkout, capsys):
    assert refusal(capsys, *RUN, "--node-rank", "2").startswith("error: --node-rank 2: expected 1 to 1")


def test_a_folder_without_the_stage_script_is_refused(checkout, capsys):
    assert refusal(capsys, *RUN).startswith("error: src/stages/train.py: not found: run join-training at the root of a checkout")
