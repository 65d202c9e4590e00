"""The GitHub workflows are valid YAML and call only commands the tests run."""

import re

import yaml

from conftest import REPO

TESTED = [
    r"sudo bash \.ci/run",  # .ci/run -> make test: this very suite
    r"make repro",  # tests/test_pipeline.py runs the same dvc repro
    r"make pr-report BASE=origin/\$\{\{ github\.base_ref \}\}",  # defectseg.pr_report, tested in test_pipeline.py
    r"make worker SLICE=\$\{\{ matrix\.worker \}\}/\$\{\{ strategy\.job-total \}\}",  # defectseg worker --slice K/N, tests/test_fanout.py
    r"make assemble",  # defectseg assemble, tests/test_fanout.py
    r"gh pr comment \$\{\{ github\.event\.pull_request\.number \}\} --body-file pr-comment\.md",  # posts that file
]


def workflows() -> dict[str, dict]:
    folder = REPO / ".github" / "workflows"
    return {path.name: yaml.safe_load(path.read_text()) for path in sorted(folder.glob("*.yml"))}


def test_workflows_are_valid_and_have_jobs():
    found = workflows()
    assert set(found) == {"tests.yml", "pipeline.yml", "fanout.yml"}
    for name, workflow in found.items():
        assert workflow["jobs"], name
        for job in workflow["jobs"].values():
            assert job["runs-on"] and job["steps"], name


def test_every_run_step_is_a_tested_command():
    for name, workflow in workflows().items():
        for job in workflow["jobs"].values():
            for step in job["steps"]:
                if "run" in step:
                    assert any(re.fullmatch(p, step["run"].strip()) for p in TESTED), f"{name}: untested step {step['run']!r}"


def test_pr_comment_is_posted_from_the_file_make_pr_report_writes():
    makefile = (REPO / "Makefile").read_text()
    assert "defectseg.cli.pr_report --base $(BASE) --out pr-comment.md" in makefile
    steps = [s.get("run", "") for s in workflows()["pipeline.yml"]["jobs"]["compare"]["steps"]]
    assert steps.index(next(s for s in steps if s.startswith("make pr-report"))) < steps.index(next(s for s in steps if s.startswith("gh pr comment")))


def test_the_fanout_assembly_waits_for_every_worker_of_the_matrix():
    jobs = workflows()["fanout.yml"]["jobs"]
    assert jobs["assemble"]["needs"] == "workers"
    assert jobs["workers"]["strategy"]["matrix"]["worker"] == list(range(1, len(jobs["workers"]["strategy"]["matrix"]["worker"]) + 1))
    makefile = (REPO / "Makefile").read_text()
    assert "defectseg worker $(if $(SLICE),--slice $(SLICE))" in makefile and "defectseg assemble" in makefile
