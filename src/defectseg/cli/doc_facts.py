"""Figures the docs state in several places (times, counts, epochs), held to one value each.

A figure that can drift is written where it stands as ``<!-- fact NAME -->text<!-- /fact -->``
(the markers are HTML comments: invisible on GitHub). Every statement of one ``NAME`` across
the README, ``docs/`` and ``configs/`` must read the same, and a fact named after a params
key of a config file, ``NAME = configs/FILE.yaml:dotted.key``, must equal that key's value
there. ``defectseg tables --check`` reports each contradiction; ``tests/test_docs.py`` fails on one.
"""

import re
from pathlib import Path

import yaml

FACT = re.compile(r"<!-- fact (?P<name>[^ ]+) -->(?P<text>.*?)<!-- /fact -->", re.S)
CONFIG_FACT = re.compile(r"^(?P<file>configs/[\w.-]+\.yaml):(?P<key>[\w.]+)$")


def fact_files(root: Path) -> list[Path]:
    """Where facts may stand: the README, every page of ``docs/`` and every config file."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md")), *sorted((root / "configs").glob("*.yaml"))]


def stated_facts(root: Path) -> dict[str, list[tuple[str, str]]]:
    """Each fact's statements: ``name -> [(file, text)]``, the text with its white space folded."""
    found: dict[str, list[tuple[str, str]]] = {}
    for path in fact_files(root):
        if path.is_file():
            for match in FACT.finditer(path.read_text()):
                text = " ".join(match.group("text").replace("#", " ").split())
                found.setdefault(match.group("name"), []).append((path.relative_to(root).as_posix(), text))
    return found


def _config_value(root: Path, file: str, key: str) -> str | None:
    config = yaml.safe_load((root / file).read_text()) or {}
    value = config.get(key)
    return None if value is None else str(value)


def contradictions(root: Path = Path(".")) -> list[str]:
    """One line per fact whose statements differ from each other or from the config key it names."""
    problems = []
    for name, statements in sorted(stated_facts(root).items()):
        texts = sorted({text for _, text in statements})
        if len(texts) > 1:
            where = "; ".join(f"{file}: {text!r}" for file, text in statements)
            problems.append(f"fact {name} is stated differently: {where}")
        if (source := CONFIG_FACT.match(name)) and (root / source["file"]).is_file():
            value = _config_value(root, source["file"], source["key"])
            if value not in texts:
                problems.append(f"fact {name} says {texts[0]!r} but {source['file']} sets {source['key']} to {value!r}")
    return problems
