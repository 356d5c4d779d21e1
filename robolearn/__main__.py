import sys

from robolearn.cli import main

if __name__ == "__main__":  # spawned worker processes (importers) import this module as __mp_main__
    sys.exit(main())
