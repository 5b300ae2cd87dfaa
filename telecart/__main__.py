"""`python -m telecart` is the `telecart` command."""

import sys

from telecart.cli import main

sys.exit(main())
