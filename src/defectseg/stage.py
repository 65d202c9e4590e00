"""Entry-point wrapper for stage scripts: expected failures become one clear line."""

import argparse
import sys
import typing
from collections.abc import Callable

from defectseg.errors import DefectsegError
from defectseg.params import LossName


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's ``main``; print a one-line cause and exit non-zero on a user error.

    Unexpected exceptions still raise with their traceback: they are bugs to report.
    """
    try:
        main()
    except DefectsegError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


def run_name(loss_name: str, seed: int) -> str:
    """The folder name of a (loss, seed) run, as ``dvc.yaml`` names its outputs."""
    return f"{loss_name}-seed{seed}"


def run_arguments(description: str) -> argparse.Namespace:
    """The ``--loss`` and ``--seed`` of a matrix stage (train, evaluate)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--loss", required=True, choices=typing.get_args(LossName))
    parser.add_argument("--seed", type=int, required=True)
    return parser.parse_args()
