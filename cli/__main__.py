"""``python -m dagmix.cli``: the ``dagmix`` command."""

import sys

from dagmix.cli import main

sys.exit(main())
