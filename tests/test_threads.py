"""The thread budget: alone a process takes every core; side by side, each takes its share."""

import os
import subprocess
import sys

import cv2
import torch

from defectseg.foundation.threads import budget_threads, job_slot, live_jobs, thread_share, usable_cores


def test_alone_a_process_takes_every_usable_core(tmp_path):
    with job_slot(tmp_path):
        assert live_jobs(tmp_path) == 1
        assert thread_share(tmp_path) == usable_cores()
    assert live_jobs(tmp_path) == 0


def test_a_slot_left_by_a_dead_process_is_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    (tmp_path / f"{dead}.job").touch()
    assert live_jobs(tmp_path) == 0 and not (tmp_path / f"{dead}.job").exists()


def test_budget_sets_torch_and_opencv_threads(tmp_path):
    before = torch.get_num_threads(), cv2.getNumThreads()
    try:
        (tmp_path / f"{os.getppid()}.job").touch()  # a second live job: the test runner's parent
        with job_slot(tmp_path):
            expected = max(1, usable_cores() // 2)
            assert budget_threads(tmp_path) == expected
            assert (torch.get_num_threads(), cv2.getNumThreads()) == (expected, expected)
    finally:
        torch.set_num_threads(before[0])
        cv2.setNumThreads(before[1])


JOB = """
import sys, time
from pathlib import Path
from defectseg.foundation.threads import job_slot, thread_share
folder, ready = Path(sys.argv[1]), Path(sys.argv[2])
with job_slot(folder):
    ready.joinpath(sys.argv[3]).touch()
    while len(list(ready.iterdir())) < int(sys.argv[4]):
        time.sleep(0.05)
    print(thread_share(folder))
    time.sleep(0.5)
"""


def test_jobs_side_by_side_each_take_their_share_of_the_cores(tmp_path):
    slots, ready = tmp_path / "slots", tmp_path / "ready"
    ready.mkdir()
    jobs = [subprocess.Popen([sys.executable, "-c", JOB, slots, ready, str(i), "3"], stdout=subprocess.PIPE, text=True) for i in range(3)]
    shares = [int(job.communicate(timeout=60)[0]) for job in jobs]
    assert shares == [max(1, usable_cores() // 3)] * 3
    assert live_jobs(slots) == 0
