"""`python -m recorder.cli` (what spawned recorders and installed units run)."""

import sys

from recorder.cli.main import main

sys.exit(main())
