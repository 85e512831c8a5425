"""Which implementation runs the innermost loops: numpy's passes, or numba's compiled single passes.

Every loop that numba can speed up is written twice, with one signature and one documented algorithm: a numpy
version, decorated here with :func:`twin`, and a numba version of the same name in a ``*_numba`` module beside
it. The layer that uses a loop owns both (the codec's loops in ``floatfmt._kernels``, the quantizers' in
``floatfmt.quant._kernels``). A call goes to the numba version when the backend is numba and the call is large
enough to gain from it; the tests run both on the same inputs and compare the bits.

The backend is ``auto`` (numba if it imports), ``numpy`` or ``numba`` (an ``ImportError`` saying what to install if
numba is missing): from the environment variable ``FLOATFMT_KERNELS`` or :func:`set_backend`. numba is imported by
the first call on at least :data:`COMPILED_MIN_SIZE` elements, never by ``import floatfmt``.

Under ``auto`` a loop is compiled (or loaded from numba's disk cache) on a background thread the first time a large
call needs it, for that call's argument types, and calls run numpy's version until it is ready: the first large
call of a process is never slower than with numpy alone. The thread imports numba after :data:`PAUSE` without a
large call (or :data:`BUSY_LIMIT` of back-to-back ones), then loads each loop as soon as it is asked for, and starts
nothing new once the main thread has ended. Under ``numba`` the call compiles and waits, so that what runs is always
the compiled loop (the tests compare the twins this way); the loops it compiled serve ``auto`` calls after it.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import queue
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any, TypeVar

import numpy as np

__all__ = ["BACKENDS", "COMPILED_MIN_SIZE", "backend", "set_backend", "twin", "using_backend", "wait_for_loops"]

BACKENDS = ("auto", "numpy", "numba")

COMPILED_MIN_SIZE = 1 << 14
"""Calls on fewer elements run numpy's loops: they take microseconds either way, and a script that encodes a
few values never pays for importing numba (about half a second)."""

Function = TypeVar("Function", bound=Callable[..., Any])

_lock = threading.Lock()
_choice: str | None = None
_numba_usable: bool | None = None  # None: not tried yet
_modules: dict[str, ModuleType] = {}


def set_backend(name: str) -> str:
    """Choose ``auto``, ``numpy`` or ``numba`` for this process; returns the backend now in use.

    Example:
        >>> import floatfmt
        >>> floatfmt.set_backend("numpy")
        'numpy'
        >>> _ = floatfmt.set_backend("auto")

    Raises:
        ValueError: for another name.
        ImportError: for ``numba`` when numba is missing, saying how to install it.
    """
    global _choice, _numba_usable
    if name not in BACKENDS:
        raise ValueError(f"unknown kernel backend {name!r}; choose one of {', '.join(BACKENDS)}")
    with _lock:
        _choice, _numba_usable = name, None
    return backend()


def backend() -> str:
    """``"numba"`` or ``"numpy"``: which implementation runs the loops of large calls (imports numba if needed)."""
    return "numba" if _numba_available() else "numpy"


@contextmanager
def using_backend(name: str) -> Iterator[str]:
    """``with using_backend("numpy"):`` runs the block with that backend and restores the previous choice."""
    previous = _chosen()
    try:
        yield set_backend(name)
    finally:
        set_backend(previous)


def _chosen() -> str:
    global _choice
    if _choice is None:
        choice = os.environ.get("FLOATFMT_KERNELS", "auto").strip().lower() or "auto"
        if choice not in BACKENDS:
            raise ValueError(f"FLOATFMT_KERNELS={choice!r} is not one of {', '.join(BACKENDS)}")
        _choice = choice
    return _choice


def _numba_available() -> bool:
    """Whether numba's loops may run: chosen, and importable (tried once per choice)."""
    global _numba_usable
    choice = _chosen()
    if choice == "numpy":
        return False
    if _numba_usable is None:
        with _lock:
            if _numba_usable is None:
                try:
                    import numba  # noqa: F401
                except ImportError as error:
                    if choice == "numba":
                        raise ImportError(
                            f'FLOATFMT_KERNELS=numba needs numba: pip install "floatfmt[fast]" ({error})'
                        ) from error
                    _numba_usable = False
                else:
                    _numba_usable = True
    return _numba_usable


def _compiled_module(name: str) -> ModuleType | None:
    """The numba module ``name`` if numba's loops may run; imported (and its loops compiled) on first use."""
    global _numba_usable
    if not _numba_available():
        return None
    module = _modules.get(name)
    if module is None:
        with _lock:
            module = _modules.get(name)
            if module is None:
                try:
                    module = importlib.import_module(name)
                except (ImportError, RuntimeError) as error:  # RuntimeError: numba found nowhere to cache
                    if _chosen() == "numba":
                        raise ImportError(f"numba's loops in {name} failed to load: {error}") from error
                    warnings.warn(f"floatfmt runs numpy's loops: numba failed ({error})", RuntimeWarning, stacklevel=4)
                    _numba_usable = False
                    return None
                _modules[name] = module
    return module


def twin(compiled_module: str, *, size: Callable[..., int]) -> Callable[[Function], Function]:
    """Declare a numpy loop whose numba twin of the same name lives in ``compiled_module``.

    ``size(*args)`` is the number of elements a call works on: calls below :data:`COMPILED_MIN_SIZE` stay on
    numpy. The decorated function keeps its numpy version as ``.numpy`` and can look up its twin with
    ``.compiled()`` (``None`` without numba), for the tests that compare the two.
    """

    def declare(numpy_version: Function) -> Function:
        name = numpy_version.__name__

        @functools.wraps(numpy_version)
        def dispatch(*args: Any) -> Any:
            if size(*args) >= COMPILED_MIN_SIZE:
                function = _compiled_function(compiled_module, name, args)
                if function is not None:
                    return function(*args)
            return numpy_version(*args)

        def compiled() -> Callable[..., Any] | None:
            module = _compiled_module(compiled_module)
            return None if module is None else getattr(module, name)

        dispatch.numpy = numpy_version  # type: ignore[attr-defined]
        dispatch.compiled = compiled  # type: ignore[attr-defined]
        dispatch.compiled_module = compiled_module  # type: ignore[attr-defined]
        return dispatch  # type: ignore[return-value]

    return declare


# --- compiling in the background under "auto" ------------------------------------------------------------------

_ready: set[tuple[Any, ...]] = set()  # (module, function, argument types) compiled or loaded
_scheduled: set[tuple[Any, ...]] = set()
_requests: queue.SimpleQueue[tuple[tuple[Any, ...], tuple[Any, ...]]] = queue.SimpleQueue()
_compiler: threading.Thread | None = None
_compiling = threading.Lock()  # held while the background thread imports or compiles
_scheduling = threading.Lock()  # guards _scheduled and the thread's start
_frozen = False  # a child forked while its parent compiled: numba may be unusable, so nothing new is compiled
_numpy_last_call = -1e9  # time.monotonic() of the last large call that ran numpy's loop under auto
_numpy_busy_since = -1e9  # and of the first of that run of calls, each less than PAUSE after the one before

PAUSE = 0.02
"""Seconds without a large call after which the background thread starts on its first loop: importing numba holds
the interpreter's lock most of the time and would slow the numpy loops of a call under way several times over.
Once numba is in, each further loop is loaded (or compiled) at once: from numba's cache that takes milliseconds."""

BUSY_LIMIT = 1.0
"""Seconds of back-to-back large calls after which it compiles anyway (long work gains most from the loops)."""

SWITCH_INTERVAL = 1e-5
"""The interpreter's thread switch interval while it compiles (restored after), so that a call running numpy's
loops meanwhile gets the lock back within microseconds rather than the default 5 ms."""


def _compiled_function(module_name: str, name: str, args: tuple[Any, ...]) -> Callable[..., Any] | None:
    """The numba version of ``name`` to run now, or ``None`` for numpy's: under ``numba`` it is loaded and compiled
    here; under ``auto``, once the background thread has it ready for these argument types."""
    choice = _chosen()
    if choice == "numpy" or _numba_usable is False:
        return None
    if choice == "numba":
        module = _compiled_module(module_name)
        if module is None:
            return None
        _ready.add((module_name, name, _types_of(args)))  # compiled by this call, and ready for auto after it
        return getattr(module, name)
    key = (module_name, name, _types_of(args))
    if key in _ready:
        module = _modules.get(module_name)
        return None if module is None else getattr(module, name)
    global _numpy_busy_since, _numpy_last_call
    now = time.monotonic()
    if now - _numpy_last_call > PAUSE:
        _numpy_busy_since = now
    _numpy_last_call = now
    if not _frozen:
        _schedule(key, args)
    return None


def _types_of(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """What numba specializes a loop on: each array's dtype, dimensions, layout and writability; other types."""
    return tuple(
        (arg.dtype.str, arg.ndim, _layout(arg), arg.flags.writeable)
        if hasattr(arg, "__array_interface__")
        else type(arg)
        for arg in args
    )


def _layout(array: np.ndarray) -> str:
    return "C" if array.flags.c_contiguous else "F" if array.flags.f_contiguous else "A"


def _stand_in(arg: Any) -> Any:
    """A tiny array numba types as it types ``arg`` (so the background compile keeps no reference to the data)."""
    if not isinstance(arg, np.ndarray):
        return arg
    layout = _layout(arg)
    shape = (4,) * max(arg.ndim, 1)
    array = np.empty(shape, dtype=arg.dtype, order="F" if layout == "F" else "C")
    if layout == "A":
        array = array[(slice(None),) * (arg.ndim - 1) + (slice(None, None, 2),)]
    array = array.reshape(()) if arg.ndim == 0 else array
    array.flags.writeable = arg.flags.writeable
    return array


def _schedule(key: tuple[Any, ...], args: tuple[Any, ...]) -> None:
    global _compiler
    if key in _scheduled:  # without the lock, which the compiling thread holds while it imports numba
        return
    with _scheduling:
        if key in _scheduled:
            return
        _scheduled.add(key)
        _requests.put((key, tuple(map(_stand_in, args))))
        if _compiler is None:
            # Not a daemon, so that a loop being compiled at exit is finished and cached by numba; the thread
            # starts nothing new once the main thread has ended, so a script's exit waits at most for that one.
            _compiler = threading.Thread(target=_compile_requests, name="floatfmt-compile")
            _compiler.start()


def _compile_requests() -> None:
    global _compiler
    main = threading.main_thread()
    while True:
        try:
            key, stand_ins = _requests.get(timeout=0.1)
        except queue.Empty:
            with _scheduling:  # _schedule starts another thread for what comes after this
                if _requests.empty():
                    _compiler = None
                    return
            continue
        while not _ready and _numpy_busy():  # only numba's import is long enough to be worth waiting for
            time.sleep(PAUSE / 4)
        if not main.is_alive():
            return
        if _compile(key, stand_ins):
            _ready.add(key)


def wait_for_loops(timeout: float = 120.0) -> bool:
    """Wait until every loop asked for so far under ``auto`` is compiled or loaded (for a benchmark that wants the
    steady state, not the first calls' numpy loops); True when none is left, False after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while _compiler is not None or not _requests.empty():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def _numpy_busy() -> bool:
    """Whether large calls are running numpy's loops back to back, and not yet for :data:`BUSY_LIMIT`."""
    return time.monotonic() - _numpy_last_call < PAUSE and _numpy_last_call - _numpy_busy_since < BUSY_LIMIT


def _compile(key: tuple[Any, ...], stand_ins: tuple[Any, ...]) -> bool:
    """Import the numba module and compile ``key``'s loop for the stand-ins' types; False if numpy's must stay."""
    module_name, name, _ = key
    with _compiling, _switching_often():
        try:
            module = _compiled_module(module_name)
            if module is None:
                return False
            function = getattr(module, name)
            if hasattr(function, "compile") and hasattr(function, "py_func"):
                import numba

                omitted = list(inspect.signature(function.py_func).parameters.values())[len(stand_ins) :]
                types = [numba.typeof(arg) for arg in stand_ins] + [numba.types.Omitted(p.default) for p in omitted]
                function.compile(tuple(types))
        except Exception as error:  # numpy's loop keeps running: say why
            warnings.warn(f"floatfmt keeps numpy's loop for {name}: compiling failed ({error})", RuntimeWarning, 2)
            return False
    return True


@contextmanager
def _switching_often() -> Iterator[None]:
    previous = sys.getswitchinterval()
    sys.setswitchinterval(min(previous, SWITCH_INTERVAL))
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def _forget_in_child() -> None:
    """Run in a forked child, which has no compiling thread. If the parent's thread was compiling at the fork,
    numba's own locks may be held for good in the child: it keeps to the loops already compiled and numpy's.
    Otherwise it schedules again, on its own thread, what the parent had not finished."""
    global _compiler, _compiling, _scheduling, _lock, _frozen
    _frozen = _frozen or _compiling.locked()
    _compiler, _compiling, _scheduling, _lock = None, threading.Lock(), threading.Lock(), threading.Lock()
    _scheduled.intersection_update(_ready)
    while not _requests.empty():
        _requests.get_nowait()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)
