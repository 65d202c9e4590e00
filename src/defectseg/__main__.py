"""``python -m defectseg``: the ``defectseg`` command, for when the console script is not on PATH."""

from defectseg.cli.commands import main

main()
