"""``python -m bench``: the benchmark suite (same as ``cets bench``)."""

import sys

from bench.cli import main

sys.exit(main())
