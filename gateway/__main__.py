"""``python -m gateway …``: the ``cets`` command line (see :mod:`gateway.cli`)."""

import sys

from gateway.cli import main

sys.exit(main())
