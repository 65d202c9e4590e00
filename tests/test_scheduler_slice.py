"""A worker takes its slice from the scheduler that started it: SLURM arrays, Kubernetes Indexed Jobs, CI parallel jobs."""

import pytest

from defectseg.cli.fanout import scheduler_slice, slice_of
from defectseg.errors import DefectsegError


@pytest.mark.parametrize(
    ("environ", "count", "expected"),
    [
        ({"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "2"}, None, (1, 2)),
        ({"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_COUNT": "2"}, None, (2, 2)),
        ({"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_MIN": "5", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_STEP": "1"}, None, (3, 3)),
        ({"JOB_COMPLETION_INDEX": "0"}, 3, (1, 3)),
        ({"JOB_COMPLETION_INDEX": "2"}, 3, (3, 3)),
        ({"CI_NODE_INDEX": "2", "CI_NODE_TOTAL": "2"}, None, (2, 2)),
        ({"CIRCLE_NODE_INDEX": "0", "CIRCLE_NODE_TOTAL": "4"}, None, (1, 4)),
        ({"BUILDKITE_PARALLEL_JOB": "3", "BUILDKITE_PARALLEL_JOB_COUNT": "4"}, None, (4, 4)),
    ],
)
def test_each_scheduler_index_becomes_a_one_based_slice(environ, count, expected):
    assert scheduler_slice({"HOME": "/root", **environ}, count) == expected


def test_every_arm_lands_in_exactly_one_slice_of_a_zero_based_array():
    arms = [f"arm{i}" for i in range(5)]
    slices = [slice_of(arms, *scheduler_slice({"SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_COUNT": "3"})) for task in range(3)]
    assert sorted(arm for part in slices for arm in part) == arms


@pytest.mark.parametrize(
    ("environ", "count", "message"),
    [
        ({}, None, "no --slice given and no scheduler index set (looked for SLURM_ARRAY_TASK_ID, JOB_COMPLETION_INDEX"),
        ({"JOB_COMPLETION_INDEX": "0"}, None, "Kubernetes Indexed Job: JOB_COMPLETION_INDEX is set but not how many workers there are: give --count N"),
        ({"JOB_COMPLETION_INDEX": "3"}, 3, "JOB_COMPLETION_INDEX=3 is not one of 3 workers counted from 0"),
        ({"CI_NODE_INDEX": "x", "CI_NODE_TOTAL": "2"}, None, "CI_NODE_INDEX='x': expected an integer"),
        ({"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_COUNT": "2", "SLURM_ARRAY_TASK_STEP": "2"}, None, "submit the array with step 1"),
        ({"SLURM_ARRAY_TASK_ID": "1", "CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "2"}, None, "several scheduler indexes set (SLURM_ARRAY_TASK_ID, CI_NODE_INDEX): give --slice"),
    ],
)
def test_a_missing_or_inconsistent_index_is_named(environ, count, message):
    with pytest.raises(DefectsegError) as error:
        scheduler_slice(environ, count)
    assert message in str(error.value)
