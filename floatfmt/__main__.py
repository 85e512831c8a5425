"""``python -m floatfmt``: the same command line as ``floatfmt``."""

try:
    from floatfmt.cli import main
except KeyboardInterrupt:  # Ctrl-C while the package loads: the conventional status, no traceback
    raise SystemExit(130) from None

raise SystemExit(main())
