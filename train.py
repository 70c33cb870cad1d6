"""Train, evaluate and use kitchenware classifiers: `python train.py {train,evaluate,predict} --help`."""

import sys

from kitchenware.cli import main

if __name__ == "__main__":
    sys.exit(main())
