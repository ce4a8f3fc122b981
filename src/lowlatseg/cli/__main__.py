"""``python -m lowlatseg.cli``: the same as the ``lowlatseg`` command."""

import sys

from lowlatseg.cli import main

sys.exit(main())
