"""A child process that runs fuzz cases for the test suite under a memory limit, so that a case that hangs or
allocates without bound fails that case instead of wedging or killing the test run.

Protocol: one JSON object per line on stdin, ``{"call": name, "args": [...], "options": {...}}``; one JSON object
per line on stdout, ``{"outcome": "value" | "error" | "bug", "type": ..., "text": ...}``. ``"error"`` is an exception
a user is meant to get (``ValueError``, ``TypeError``, ``KeyError``, an argparse exit); ``"bug"`` is anything else,
with its traceback. The parent (``tests/test_fuzz_inputs.py``) times each reply and restarts the worker after one.
"""

from __future__ import annotations

import contextlib
import io
import json
import resource
import sys
import traceback
from typing import Any

MEMORY_LIMIT = 1 << 30
"""Bytes of heap a case may add to the worker's (``RLIMIT_DATA``): above it the allocation fails with
``MemoryError``, which the parent reports as a bug."""


def _limit_memory() -> None:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[5])  # data + stack, in pages
    used = pages * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_DATA, (used + MEMORY_LIMIT, resource.getrlimit(resource.RLIMIT_DATA)[1]))


def _calls() -> dict[str, Any]:
    import numpy as np

    import floatfmt
    from floatfmt import cli

    def run_cli(*argv: str) -> str:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = cli.main(list(argv))
            except SystemExit as stop:  # argparse's usage errors
                status = stop.code if isinstance(stop.code, int) else 2
        if "Traceback" in err.getvalue():
            raise AssertionError(f"the command line printed a traceback:\n{err.getvalue()}")
        if status not in (0, 1, 2):
            raise AssertionError(f"exit status {status}")
        if status and not err.getvalue().strip():
            raise AssertionError(f"exit status {status} with nothing on stderr")
        return f"exit {status}: {(out.getvalue() + err.getvalue())[:200]}"

    def encode(values: list[Any], fmt: str, **options: Any) -> str:
        return repr(floatfmt.encode(np.asarray(values, dtype=options.pop("dtype", None)), fmt, **options))

    def decode(codes: list[Any], fmt: str, **options: Any) -> str:
        return repr(floatfmt.decode(codes, fmt, **options))

    def explain(spec: Any, fmt: str, **options: Any) -> str:
        decoded = floatfmt.explain(spec, fmt, **options)
        json.dumps(decoded.as_dict())  # every explanation serializes
        return str(decoded) + decoded._repr_html_()[:0]

    return {"cli": run_cli, "encode": encode, "decode": decode, "explain": explain}


def main() -> None:
    _limit_memory()
    calls = _calls()
    expected = (ValueError, TypeError, KeyError)
    for line in sys.stdin:
        case = json.loads(line)
        try:
            value = calls[case["call"]](*case["args"], **case.get("options", {}))
            reply = {"outcome": "value", "type": "", "text": value[:500]}
        except expected as error:
            text = str(error)
            bare = not text or len(text) > 2000  # a message must say something, and not quote a megabyte back
            reply = {"outcome": "bug" if bare else "error", "type": type(error).__name__, "text": text[:2000]}
        except BaseException as error:  # every other exception is the finding
            reply = {"outcome": "bug", "type": type(error).__name__, "text": traceback.format_exc()[-3000:]}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
