"""Every ``torch.load`` in the package refuses pickled objects."""

import re

from conftest import REPO


def test_every_torch_load_passes_weights_only_true():
    calls = []
    for path in sorted((REPO / "src").rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if re.search(r"\btorch\.load\(", line):
                calls.append((path.name, number, "weights_only=True" in line))
    assert calls, "expected at least one torch.load call"
    assert all(safe for _, _, safe in calls), calls
