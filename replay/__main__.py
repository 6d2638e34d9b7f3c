"""``python -m replay <command> ...``: the replay tool (see :mod:`replay.cli`)."""

import sys

from replay.cli import main

sys.exit(main())
