"""`python -m depmirror.cli`: the same as the `depmirror` command."""

import sys

from depmirror.cli.main import main

sys.exit(main())
