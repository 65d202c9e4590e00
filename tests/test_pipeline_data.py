"""The data stages through ``dvc repro`` in a real git + DVC repository."""

import pytest

from conftest import MTD, ran


@pytest.fixture
def small_repo(dvc_repo):
    dvc_repo.set_params(**{"data.synthetic.count": 24, "preprocess.image_size": 64})
    dvc_repo.commit("small pipeline")
    return dvc_repo


@pytest.mark.slow
def test_repro_runs_data_stages_then_does_nothing(small_repo):
    first = small_repo.run("dvc", "repro", "prepare", "preprocess")
    assert "Running stage 'prepare'" in first.stdout and "Running stage 'preprocess'" in first.stdout
    assert list((small_repo.root / "data" / "preprocessed").glob("pairs-*.npz"))
    second = small_repo.run("dvc", "repro", "prepare", "preprocess")
    assert ran(second) == set()


def test_preprocess_param_change_does_not_rerun_prepare(small_repo):
    small_repo.run("dvc", "repro", "prepare", "preprocess")
    small_repo.set_params(**{"preprocess.image_size": 48})
    result = small_repo.run("dvc", "repro", "prepare", "preprocess")
    assert "Running stage 'prepare'" not in result.stdout
    assert "Running stage 'preprocess'" in result.stdout


def test_bad_source_fails_with_one_line_and_no_outputs(small_repo, tmp_path):
    small_repo.set_params(**{"data.source": str(tmp_path / "missing")})
    result = small_repo.run("dvc", "repro", "prepare", check=False)
    assert result.returncode != 0
    assert f"error: {tmp_path / 'missing'}: source path does not exist" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (small_repo.root / "data" / "prepared").exists()


def test_unknown_param_key_fails_naming_it(small_repo):
    small_repo.set_params(**{"preprocess.colour": "red"})
    result = small_repo.run("dvc", "repro", "prepare", check=False)
    assert result.returncode != 0
    assert "preprocess.colour: unknown key" in result.stderr


@pytest.mark.skipif(not MTD.is_dir(), reason="Magnetic Tile copy not at ../shared/datasets/magnetic-tile")
def test_exp_run_on_mtd_path(small_repo):
    small_repo.run("dvc", "exp", "run", "prepare", "-S", f"data.source={MTD}")
    summary = (small_repo.root / "data" / "prepared" / "summary.json").read_text()
    assert '"pairs": 1079' in summary
