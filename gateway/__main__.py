"""``python -m gateway serve …`` and ``python -m gateway users …``."""

import sys

from gateway.cli import main

sys.exit(main())
