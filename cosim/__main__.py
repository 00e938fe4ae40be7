"""``python -m cosim``: see :mod:`cosim.cli`."""

from cosim.cli import main

raise SystemExit(main())
