"""``python -m sme`` runs the ``smeflow`` command line."""

import sys

from sme.cli import main

sys.exit(main())
