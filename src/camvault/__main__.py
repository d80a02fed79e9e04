"""``python -m camvault`` is the ``camvault`` command."""

import sys

from camvault.cli import main

sys.exit(main())
