import sys

from robolearn.cli import main

sys.exit(main())
