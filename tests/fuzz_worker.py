"""The fuzz suites' child process: each case runs there under a memory limit and a watchdog, so that a case that
hangs or allocates without bound fails that case instead of wedging or killing the test run.

``python tests/fuzz_worker.py`` is the child. Protocol: one JSON object per line on stdin, ``{"call": name, "args":
[...], "options": {...}}``; one per line on stdout, ``{"outcome": "value" | "error" | "bug", "type": ..., "text":
...}``. ``"error"`` is an exception a user is meant to get (``ValueError`` and so ``WeightsError``, ``TypeError``,
``KeyError``, an argparse exit); ``"bug"`` is anything else, with its traceback. :class:`Worker` is the parent's
side (the ``fuzz_worker`` fixture of ``tests/conftest.py``): it times each reply and restarts the child after a
case that hung or killed it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import selectors
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

CASE_SECONDS = 5.0
"""The watchdog: a case that takes longer fails (the findings took 9 s to minutes)."""

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

    def encode(values: list[Any], fmt: str, dtype: str | None = None, **options: Any) -> str:
        """``values`` as a list, or as a numpy array of ``dtype`` where numpy can make one (the case is then
        about floatfmt, not numpy's conversions)."""
        if dtype is not None:
            try:
                with np.errstate(all="ignore"):
                    values = np.asarray(values, dtype=dtype)  # type: ignore[assignment]
            except (OverflowError, ValueError, TypeError):
                return f"numpy makes no {dtype} array of these values"
        return repr(floatfmt.encode(values, fmt, **options))

    def decode(codes: list[Any], fmt: str, **options: Any) -> str:
        return repr(floatfmt.decode(codes, fmt, **options))

    def explain(spec: Any, fmt: str, **options: Any) -> str:
        decoded = floatfmt.explain(spec, fmt, **options)
        json.dumps(decoded.as_dict())  # every explanation serializes
        return str(decoded) + decoded._repr_html_()[:0]

    def read(path: str) -> str:
        """Open a checkpoint and read every tensor whole and by rows; a refusal must name the file or its folder."""
        try:
            weights = floatfmt.open_weights(path)
            for name, info in weights.tensors.items():
                array = np.asarray(weights[name])
                assert array.shape == info.shape, (name, array.shape, info.shape)
                if info.shape and info.shape[0]:
                    weights.read_rows(name, 0, 1)
            weights.close()
        except floatfmt.WeightsError as error:
            if os.path.basename(path) not in str(error) and os.path.dirname(path) not in str(error):
                raise AssertionError(f"the message names neither the file nor its folder: {error}") from None
            raise
        return f"{len(weights)} tensors"

    def harness(kind: str) -> str:
        """Cases that must fail, to show the harness catches them: an unexpected exception, a hang, a huge
        allocation."""
        if kind == "bug":
            return str(1 / 0)
        if kind == "hang":
            time.sleep(60)
        if kind == "allocation":
            return str(len(bytearray(4 * MEMORY_LIMIT)))
        return kind

    return {"cli": run_cli, "encode": encode, "decode": decode, "explain": explain, "read": read, "harness": harness}


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


class Worker:
    """The parent's side: starts the child, sends it cases, and fails a case that hangs or kills it."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> subprocess.Popen[str]:
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        return self.process

    def run(self, call: str, *args: Any, timeout: float = CASE_SECONDS, **options: Any) -> dict[str, str]:
        """The child's reply to one case; ``pytest.fail`` if it takes longer than ``timeout`` or dies."""
        import pytest

        process = self.process if self.process and self.process.poll() is None else self.start()
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(json.dumps({"call": call, "args": list(args), "options": options}) + "\n")
        process.stdin.flush()
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            ready = selector.select(timeout)
        if not ready:
            self.stop()
            pytest.fail(f"{call}{tuple(args)!r:.300} {options} took more than {timeout} s")
        line = process.stdout.readline()
        if not line:
            status = process.wait()
            self.stop()
            pytest.fail(f"{call}{tuple(args)!r:.300} {options} killed the worker (exit status {status})")
        reply: dict[str, str] = json.loads(line)
        return reply

    def check(self, call: str, *args: Any, **options: Any) -> dict[str, str]:
        """:meth:`run`, failing the test unless the reply is a value or an expected error."""
        import pytest

        reply = self.run(call, *args, **options)
        if reply["outcome"] == "bug":
            pytest.fail(f"{call}{tuple(args)!r:.300} {options} raised {reply['type']}:\n{reply['text']}")
        return reply

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            for pipe in (self.process.stdin, self.process.stdout):
                if pipe is not None:
                    pipe.close()
            self.process = None


if __name__ == "__main__":
    main()
