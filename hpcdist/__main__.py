"""``python -m hpcdist`` is the same as the ``hpcdist`` command."""

from hpcdist.cli import main

raise SystemExit(main())
