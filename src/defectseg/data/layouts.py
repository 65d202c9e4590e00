"""Find image/mask pairs in a source folder, whichever of the three layouts it uses.

- MTD: ``MT_<Class>/Imgs/<stem>.jpg`` with its mask ``<stem>.png`` beside it.
- seed: ``srcImg/<name>`` with ``label/<name>`` (optionally under ``train_*``/``val_*``).
- plain: ``images/<stem>.*`` with ``masks/<stem>.*``, matched by stem.

Files that are clearly not images (by suffix) are skipped and counted; every other
problem (a missing mask, an orphan mask, a duplicate id, a link leaving the source)
is an error, because silently dropping data would change the results.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from defectseg.data.images import IMAGE_SUFFIXES
from defectseg.errors import DataError

FREE = "free"
DEFECT = "defect"
SEARCH_DEPTH = 2


@dataclass(frozen=True)
class Pair:
    """One image and its mask; ``defect_class`` and ``group`` (the physical object it shows) are None where the source does not say."""

    id: str
    image: Path
    mask: Path
    defect_class: str | None
    group: str | None = None


@dataclass
class Found:
    """What a layout scan found: the pairs, the non-image files it skipped, and the folder the layout sits in."""

    layout: str
    pairs: list[Pair]
    skipped: list[Path] = field(default_factory=list)
    folder: Path | None = None


def _files(folder: Path, root: Path) -> Iterable[Path]:
    """Files directly in ``folder``, refusing links that point outside ``root``."""
    for path in sorted(folder.iterdir()):
        if path.is_symlink():
            target = path.resolve()
            if not target.is_relative_to(root.resolve()):
                raise DataError(path, f"symbolic link points outside the source folder (to {target})")
        if path.is_file():
            yield path


def _split_images(files: Iterable[Path], skipped: list[Path]) -> list[Path]:
    images = []
    for path in files:
        (images if path.suffix.lower() in IMAGE_SUFFIXES else skipped).append(path)
    return images


def _by_stem(paths: list[Path]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in paths:
        if path.stem in found:
            raise DataError(path, f"duplicate id {path.stem!r}: also {found[path.stem]}")
        found[path.stem] = path
    return found


def _mtd(root: Path) -> Found:
    found = Found("mtd", [])
    for class_dir in sorted(root.glob("MT_*")):
        imgs = class_dir / "Imgs"
        if not imgs.is_dir():
            raise DataError(class_dir, "MTD class folder has no Imgs/ folder")
        defect_class = class_dir.name.removeprefix("MT_").lower()
        files = _split_images(_files(imgs, root), found.skipped)
        images = _by_stem([p for p in files if p.suffix.lower() != ".png"])
        masks = _by_stem([p for p in files if p.suffix.lower() == ".png"])
        for stem in sorted(masks.keys() - images.keys()):
            raise DataError(masks[stem], "mask has no image beside it")
        for stem, image in images.items():
            if stem not in masks:
                raise DataError(image, f"mask missing: expected {imgs / (stem + '.png')}")
            found.pairs.append(Pair(stem, image, masks[stem], defect_class))
    return found


def _matched(image_dir: Path, mask_dir: Path, root: Path, found: Found) -> None:
    images = _by_stem(_split_images(_files(image_dir, root), found.skipped))
    masks = _by_stem(_split_images(_files(mask_dir, root), found.skipped))
    for stem in sorted(masks.keys() - images.keys()):
        raise DataError(masks[stem], f"mask has no image in {image_dir}")
    for stem, image in images.items():
        if stem not in masks:
            raise DataError(image, f"mask missing: no file named {stem}.* in {mask_dir}")
        found.pairs.append(Pair(stem, image, masks[stem], None))


def _seed(root: Path) -> Found:
    found = Found("seed", [])
    parts = [root] if (root / "srcImg").is_dir() else sorted(
        p for p in root.iterdir() if p.is_dir() and p.name.startswith(("train_", "val_"))
    )
    for part in parts:
        _matched(part / "srcImg", part / "label", root, found)
    return found


def _plain(root: Path) -> Found:
    found = Found("plain", [])
    _matched(root / "images", root / "masks", root, found)
    return found


def _detect(folder: Path):
    if any((p / "Imgs").is_dir() for p in folder.glob("MT_*")):
        return _mtd
    if (folder / "srcImg").is_dir() and (folder / "label").is_dir():
        return _seed
    if any((p / "srcImg").is_dir() for p in folder.glob("train_*")):
        return _seed
    if (folder / "images").is_dir() and (folder / "masks").is_dir():
        return _plain
    return None


def _candidates(root: Path) -> Iterable[Path]:
    """``root`` and the folders below it, breadth first, up to ``SEARCH_DEPTH`` deep."""
    level = [root]
    for _ in range(SEARCH_DEPTH + 1):
        yield from level
        level = [c for p in level for c in sorted(p.iterdir()) if c.is_dir() and not c.name.startswith(".")]


def find_pairs(root: Path) -> Found:
    """Detect the layout under ``root`` (at most two folders down) and list its pairs."""
    root = Path(root)
    if not root.exists():
        raise DataError(root, "source path does not exist")
    if not root.is_dir():
        raise DataError(root, "source is neither a folder nor a .zip file")
    if not any(root.iterdir()):
        raise DataError(root, "source folder is empty")
    for folder in _candidates(root):
        scan = _detect(folder)
        if scan is not None:
            found = scan(folder)
            found.folder = folder
            if not found.pairs:
                raise DataError(folder, f"{found.layout} layout found but it holds no image/mask pairs")
            return found
    raise DataError(
        root,
        "unknown layout: expected MT_<Class>/Imgs/ (MTD), srcImg/ + label/ (seed) or images/ + masks/",
    )
