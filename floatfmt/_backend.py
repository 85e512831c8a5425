"""Which implementation runs the innermost loops: numpy's passes, or numba's compiled single passes.

Every loop that numba can speed up is written twice, with one signature and one documented algorithm: a numpy
version, decorated here with :func:`twin`, and a numba version of the same name in a ``*_numba`` module beside
it. The layer that uses a loop owns both (the codec's loops in ``floatfmt._kernels``, the quantizers' in
``floatfmt.quant._kernels``). A call goes to the numba version when the backend is numba and the call is large
enough to gain from it; the tests run both on the same inputs and compare the bits.

The backend is ``auto`` (numba if it imports), ``numpy`` or ``numba`` (an ``ImportError`` saying what to install if
numba is missing): from the environment variable ``FLOATFMT_KERNELS`` or :func:`set_backend`. numba is imported by
the first call on at least :data:`COMPILED_MIN_SIZE` elements, never by ``import floatfmt``.
"""

from __future__ import annotations

import functools
import importlib
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any, TypeVar

__all__ = ["BACKENDS", "COMPILED_MIN_SIZE", "backend", "set_backend", "twin", "using_backend"]

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
                module = _compiled_module(compiled_module)
                if module is not None:
                    return getattr(module, name)(*args)
            return numpy_version(*args)

        def compiled() -> Callable[..., Any] | None:
            module = _compiled_module(compiled_module)
            return None if module is None else getattr(module, name)

        dispatch.numpy = numpy_version  # type: ignore[attr-defined]
        dispatch.compiled = compiled  # type: ignore[attr-defined]
        dispatch.compiled_module = compiled_module  # type: ignore[attr-defined]
        return dispatch  # type: ignore[return-value]

    return declare
