"""Entry-point wrapper for stage scripts: expected failures become one clear line."""

import sys
from collections.abc import Callable

from defectseg.errors import DefectsegError


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
