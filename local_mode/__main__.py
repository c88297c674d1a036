"""`python -m local_mode run ...`: see local_mode/cli.py and docs/local-mode.md."""

import sys

from local_mode.cli import main

sys.exit(main())
