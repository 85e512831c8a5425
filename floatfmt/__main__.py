"""``python -m floatfmt``: the same command line as ``floatfmt``."""

from floatfmt.cli import main

raise SystemExit(main())
