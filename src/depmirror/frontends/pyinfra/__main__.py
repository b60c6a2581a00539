"""`python -m depmirror.frontends.pyinfra`: gevent patches the standard library first, as pyinfra's own CLI
does, so that SSH sessions to many hosts run side by side; then the commands of `cli`."""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402 (after the patch, on purpose)

from depmirror.frontends.pyinfra.cli import main  # noqa: E402

sys.exit(main())
