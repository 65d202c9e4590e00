"""The README is the front door, its links resolve, and the result tables cannot drift from the reports."""

import json
import re
import shutil
from pathlib import Path

import pytest

from conftest import REPO
from defectseg.cli.doc_facts import contradictions, stated_facts
from defectseg.cli.results_tables import check_tables, provenance, remeasured_stages, render, write_tables
from defectseg.errors import DefectsegError

LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def markdown_files() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def test_readme_is_short_and_starts_with_the_two_setup_commands():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) < 200
    first_block = re.search(r"```bash\n(.*?)```", text, re.DOTALL).group(1)
    assert [line.split("#")[0].strip() for line in first_block.strip().splitlines()] == ["make repro", "make test"]


@pytest.mark.parametrize("page", markdown_files(), ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    for target in LINK.findall(page.read_text()):
        if "://" in target or target.startswith("mailto:"):
            continue
        assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


def test_readme_links_every_docs_page():
    readme = (REPO / "README.md").read_text()
    assert all(f"docs/{page.name}" in readme for page in (REPO / "docs").glob("*.md"))


def test_committed_result_tables_match_their_reports():
    assert check_tables(REPO) == []


def copy_of_docs(tmp_path: Path) -> Path:
    for name in ("README.md", "docs", "reports", "src"):
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, tmp_path / name)
    return tmp_path


def test_a_hand_edited_table_is_caught_and_rewritten(tmp_path):
    root = copy_of_docs(tmp_path)
    readme = root / "README.md"
    original = readme.read_text()
    block = re.search(r"<!-- results: (\S+) -->\n(.*?)<!-- /results -->", original, re.DOTALL)
    assert block, "the README cites a report"
    edited = re.sub(r"\| (\d\.\d{3})", lambda m: f"| {float(m.group(1)) + 0.1:.3f}", block.group(2), count=1)
    assert edited != block.group(2)
    readme.write_text(original.replace(block.group(2), edited))
    assert check_tables(root) == [f"README.md: {block.group(1)}"]
    assert write_tables(root) == [readme]
    assert readme.read_text() == original and check_tables(root) == []



def test_a_block_citing_a_missing_report_is_one_line_naming_the_document_and_the_folder(tmp_path):
    root = copy_of_docs(tmp_path)
    readme = root / "README.md"
    readme.write_text(readme.read_text() + "\n<!-- results: reports/no-such-report -->\n<!-- /results -->\n")
    for check in (check_tables, write_tables):
        with pytest.raises(DefectsegError, match=r"README.md: a results block cites reports/no-such-report, which holds no report"):
            check(root)

PARAMS_TEXT = (REPO / "params.yaml").read_text()


def fixture_report(root: Path, record: dict) -> Path:
    """A copy of a committed report as ``reports/fixture`` under ``root``, with ``record`` as its provenance."""
    folder = root / "reports" / "fixture"
    shutil.copytree(root / "reports" / "mtd-cv-losses", folder)
    (folder / "provenance.json").write_text(json.dumps(record))
    return folder


def test_a_table_whose_stage_code_changed_is_marked_stale(tmp_path):
    root = copy_of_docs(tmp_path)
    current = __import__("hashlib").md5((root / "src/defectseg/training/losses.py").read_bytes()).hexdigest()
    # a lock also carries entries of stages the experiment's pipeline does not have, recorded with older code
    lock = {"stages": {"train@unet-bce-0-0": {"deps": [{"path": "src/defectseg/training/losses.py", "md5": current}]},
                       "train@gone-bce-0-0": {"deps": [{"path": "src/defectseg/training/losses.py", "md5": "0" * 32}]}}}  # fmt: skip
    fixture_report(root, provenance(json.dumps(lock), PARAMS_TEXT, "0123456789abcdef", "2026-11-28", 600, ["configs/mtd.yaml"], "fixture"))
    fresh = render(Path("reports/fixture"), root)
    assert "commit `0123456789`" in fresh and "10.0 min wall time" in fresh and "Stale" not in fresh
    with open(root / "src/defectseg/training/losses.py", "a") as module:
        module.write("# changed\n")
    assert "**Stale**: made by earlier code: the code changed since (losses.py); re-run it" in render(Path("reports/fixture"), root)


def test_a_history_block_names_the_changed_code_without_asking_for_a_rerun(tmp_path):
    root = copy_of_docs(tmp_path)
    lock = {"stages": {"train@unet-bce-0-0": {"deps": [{"path": "src/defectseg/training/losses.py", "md5": "0" * 32}]}}}
    fixture_report(root, provenance(json.dumps(lock), PARAMS_TEXT, "0123456789abcdef", "2026-11-28", 600, [], "fixture"))
    (root / "docs" / "history.md").write_text("<!-- results: reports/fixture history -->\n<!-- /results -->\n")
    assert check_tables(root) == ["docs/history.md: reports/fixture"]
    write_tables(root)
    written = (root / "docs" / "history.md").read_text()
    assert "**History**: kept as the record of what ran at the commit(s) above, not refreshed; the code changed since (losses.py)." in written
    assert "Stale" not in written and check_tables(root) == []


def test_a_remade_report_keeps_the_measurement_and_says_it_was_remade(tmp_path):
    root = copy_of_docs(tmp_path)
    lock = {"stages": {"train@a": {"outs": [{"path": "models/a/model.pt", "md5": "1" * 32}]}, "report": {"outs": [{"path": "reports/report.md", "md5": "2" * 32}]},
                       "ship": {"outs": [{"path": "release", "md5": "5" * 32}]}}}
    first = provenance(json.dumps(lock), PARAMS_TEXT, "0123456789abcdef", "2026-11-28", 3300, [], "fixture")
    remade_lock = json.loads(json.dumps(lock))
    remade_lock["stages"]["report"]["outs"][0]["md5"] = "3" * 32
    remade_lock["stages"]["ship"]["outs"][0]["md5"] = "6" * 32
    assert remeasured_stages(remade_lock, lock) == [], "only the report and the model card it ships were written again"
    fixture_report(root, provenance(json.dumps(remade_lock), PARAMS_TEXT, "fedcba9876543210", "2026-11-30", 30, [], "fixture-remade", first))
    line = next(line for line in render(Path("reports/fixture"), root).splitlines() if "Measured" in line)
    assert "Measured 2026-11-28" in line and "55.0 min wall time, commit `0123456789`, experiment `fixture`" in line
    assert "report re-made 2026-11-30 at commit `fedcba9876` from DVC's run-cache, experiment `fixture-remade`" in line
    remade_lock["stages"]["train@a"]["outs"][0]["md5"] = "4" * 32
    assert remeasured_stages(remade_lock, lock) == ["train@a"]


def test_a_table_gives_each_small_class_its_recall_beside_its_iou(tmp_path):
    root = copy_of_docs(tmp_path)
    row = next(line for line in render(Path("reports/mtd-cv-losses-20261130-044535"), root).splitlines() if line.startswith("| mobilenet_unet-dicebce"))
    assert "| 0.216 / 0.739 | 0.239 / 0.870 |" in row
    row = next(line for line in render(Path("reports/mtd-cv-losses"), root).splitlines() if line.startswith("| unet-dicebce"))
    assert " / n/a |" in row, "a report from before per-class recall says so"


def test_a_table_whose_modules_moved_says_so_and_asks_for_a_rerun(tmp_path):
    root = copy_of_docs(tmp_path)
    lock = {"stages": {"train@unet-bce-0-0": {"deps": [{"path": "src/defectseg/losses.py", "md5": "0" * 32}]}}}
    fixture_report(root, provenance(json.dumps(lock), PARAMS_TEXT, "0123456789abcdef", "2026-11-28", 600, [], "fixture"))
    assert "**Stale**: made by earlier code: 1 of its modules have since moved or been removed (losses.py); re-run it" in render(Path("reports/fixture"), root)


def test_no_figure_the_docs_state_twice_is_contradicted():
    assert contradictions(REPO) == []
    assert "configs/mtd-gpu.yaml:train.epochs" in stated_facts(REPO), "the docs hold facts to check"


def test_a_planted_contradiction_is_caught_by_tables_check(tmp_path):
    root = copy_of_docs(tmp_path)
    shutil.copytree(REPO / "configs", root / "configs")
    gpu = root / "docs" / "gpu.md"
    original = gpu.read_text()
    gpu.write_text(original.replace("<!-- fact configs/mtd-gpu.yaml:train.epochs -->60<", "<!-- fact configs/mtd-gpu.yaml:train.epochs -->90<"))
    found = contradictions(root)
    assert any(line.startswith("fact configs/mtd-gpu.yaml:train.epochs is stated differently") and "docs/gpu.md: '90'" in line for line in found)
    config = root / "configs" / "mtd-gpu.yaml"
    config.write_text(config.read_text().replace("train.epochs: 60", "train.epochs: 90"))
    gpu.write_text(original)
    assert any("says '60' but configs/mtd-gpu.yaml sets train.epochs to '90'" in line for line in contradictions(root))
