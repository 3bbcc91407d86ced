"""``python -m qasearch`` is the ``qasearch`` command."""

import sys

from qasearch.cli import main

sys.exit(main())
