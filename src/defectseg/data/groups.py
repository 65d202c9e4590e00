"""Groups: the images of one physical object, which no split, fold or bootstrap may divide.

An image's group comes, in this order, from:
1. a ``groups.csv`` the user puts beside the data (columns ``id,group``; ids it leaves out
   fall through to the next rules);
2. the source's own naming: synthetic images name their object; in the Magnetic Tile
   layout, one tile's exposures carry consecutive frame numbers (``exp<k>_num_<frame>``),
   so an image whose frame lies within ``mtd_frame_gap`` frames of the previous one (over
   all class folders: one tile's defective and defect-free crops share its frames) joins
   its group;
3. otherwise the image alone.
Then near-duplicates (``near_duplicates``) join their groups, for every source: a tile
recaptured in a later session, an image copied twice.
"""

import csv
import re
from pathlib import Path

from defectseg.errors import DataError

GROUPS_FILE = "groups.csv"
MTD_FRAME = re.compile(r"^exp\d+_num_(\d+)$")


def read_groups_file(path: Path, ids: set[str]) -> dict[str, str]:
    """The ``id -> group`` table of a user's groups file; an unknown id or an empty group is an error naming the file."""
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(path, f"unreadable groups file ({exc}): expected CSV with columns id,group") from None
    if not rows or {"id", "group"} - set(rows[0]):
        raise DataError(path, "groups file needs a header with columns id,group and one row per image")
    table = {}
    for line, row in enumerate(rows, start=2):
        image, group = (row["id"] or "").strip(), (row["group"] or "").strip()
        if image not in ids:
            raise DataError(path, f"line {line}: id {image!r} is not an image of the source")
        if not group:
            raise DataError(path, f"line {line}: id {image!r} has an empty group")
        table[image] = group
    return table


def mtd_frame_groups(ids: list[str], gap: int) -> dict[str, str]:
    """Magnetic Tile ids grouped by frame number: sorted by frame, an id within ``gap`` frames
    of the previous one joins its group, named ``frames_<first frame>``; ids of another form are left out."""
    frames = sorted((int(match[1]), image) for image in ids if (match := MTD_FRAME.match(image)))
    groups, name, previous = {}, "", None
    for frame, image in frames:
        if previous is None or frame - previous > gap:
            name = f"frames_{frame}"
        groups[image] = name
        previous = frame
    return groups


class _Union:
    """Disjoint sets over positions 0..n-1 (union by smallest root, so the result does not depend on join order)."""

    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def join(self, i: int, j: int) -> None:
        a, b = self.find(i), self.find(j)
        if a != b:
            self.parent[max(a, b)] = min(a, b)


def join_groups(ids: list[str], labels: list[str | None], pairs: list[tuple[int, int]]) -> list[str]:
    """Each id's group: ids sharing a label are one group, an unlabelled id is its own, and
    every pair (positions) joins its two groups. A group is named by its smallest label, or
    by its smallest id where none of its images has one."""
    union = _Union(len(ids))
    first_with: dict[str, int] = {}
    for position, label in enumerate(labels):
        if label is not None:
            union.join(first_with.setdefault(label, position), position)
    for a, b in pairs:
        union.join(a, b)
    names: dict[int, tuple[bool, str]] = {}
    for position, (image, label) in enumerate(zip(ids, labels)):
        root = union.find(position)
        candidate = (label is None, image if label is None else label)
        names[root] = min(names.get(root, candidate), candidate)
    return [names[union.find(position)][1] for position in range(len(ids))]
