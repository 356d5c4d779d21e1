"""`python -m robolearn.pretrain ...` (and `torchrun ... -m robolearn.pretrain ...`) = `robolearn pretrain ...`."""

import sys

from robolearn.cli import main

if __name__ == "__main__":
    sys.exit(main(["pretrain", *sys.argv[1:]]))
