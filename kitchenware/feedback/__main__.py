"""`python -m kitchenware.feedback purge|erase|upgrade`: the feedback store's upkeep where only the service's
modules are, in its image (deploy/kubernetes.yaml runs purge from a CronJob). `kitchenware feedback` has the same
commands."""

from __future__ import annotations

import argparse
import sys

from kitchenware.core.photos import DataError
from kitchenware.feedback import commands


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kitchenware.feedback", description=__doc__)
    commands.add_parsers(parser.add_subparsers(dest="feedback_command", required=True))
    args = parser.parse_args(argv)
    commands.check(parser, args)
    try:
        commands.run(args)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
