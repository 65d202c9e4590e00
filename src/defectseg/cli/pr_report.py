"""The pull-request comment: metric and param changes against a base revision, as Markdown.

Run: python -m defectseg.pr_report --base origin/main --out pr-comment.md
(or `make pr-report BASE=origin/main`). It calls `dvc metrics diff --md` and
`dvc params diff --md` against ``--base`` and appends the headline table of this
branch's reports/report.md.
"""

import argparse
import subprocess
import sys
from pathlib import Path

from defectseg.foundation.atomic import write_text

TABLE_HEADING = "## Headline"


def _dvc(*args: str) -> str:
    dvc = Path(sys.executable).parent / "dvc"
    result = subprocess.run([str(dvc), *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"dvc {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def comparison_section(report: Path) -> str:
    """The "Headline" section of the report, up to the next heading."""
    if not report.exists():
        return f"_{report} not found: run the pipeline first._"
    text = report.read_text()
    if TABLE_HEADING not in text:
        return f"_{report} has no comparison table._"
    section = text.split(TABLE_HEADING, 1)[1]
    return section.split("\n## ", 1)[0].strip()


def pr_markdown(base: str, report: Path = Path("reports/report.md")) -> str:
    metrics = _dvc("metrics", "diff", base, "--md", "--all") or "_No metric changed._"
    params = _dvc("params", "diff", base, "--md") or "_No param changed._"
    return "\n\n".join(
        [
            f"## Metrics: this branch against `{base}`",
            metrics,
            f"## Params: this branch against `{base}`",
            params,
            "## Comparison on this branch (headline)",
            comparison_section(report),
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", required=True, help="git revision to compare with, e.g. origin/main")
    parser.add_argument("--out", type=Path, default=Path("pr-comment.md"))
    args = parser.parse_args()
    write_text(args.out, pr_markdown(args.base))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
