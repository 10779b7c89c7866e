"""Compiled kernels with an on-disk cache that cannot go stale: ``@kernel`` is ``numba.njit(cache=True)`` keyed by
the source of every project module the kernel can reach, not only its own file.

Why: numba's cache checks only the file that defines a function. A cached kernel that calls (or inlines) a jitted
function from another file, or freezes a table another file computes, keeps running the old machine code after that
other file changes (numba docs, "Cache invalidation") — in a project whose claim is bit-exactness, an edited kernel
could silently run stale code. Here each ``@kernel`` records, when it is decorated, the transitive set of project
modules reachable from its module's globals (functions, classes, dispatchers, modules); a content hash of all their
source files becomes part of the cache's source stamp, so an edit to any of them recompiles the kernel on next use.
The set is an over-approximation (an edit anywhere in a reachable module recompiles): correctness over compile time.

This module sits at the bottom of the import ladder (envs) so every package's kernels can use it.

Mechanism: a cache locator registered in front of numba's own (``numba.core.caching``), used only for functions
decorated here. It is private numba API (checked on numba 0.68, pinned in constraints.txt); if it ever fails to
import, ``@kernel`` falls back to compiling without an on-disk cache — slower start-up, never stale code — and says
so once. ``tests/test_numba_cache.py`` proves an edit to a called kernel takes effect.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import types
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from numba import njit

F = TypeVar("F", bound=Callable[..., Any])

# Top-level packages whose source counts as a dependency (plus the package of the decorated function itself).
PROJECT_PACKAGES = frozenset({"envs", "controllers", "firmware_bridge", "hil", "experiments"})
_DEPS_ATTR = "__legloop_cache_key__"


@functools.cache
def _file_digest(path: str, mtime_ns: int, size: int) -> bytes:
    # mtime and size are part of the memo key so an edit during the process is re-read.
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).digest()


def _module_of(value: Any) -> str | None:
    if isinstance(value, types.ModuleType):
        return value.__name__
    py_func = getattr(value, "py_func", None)  # a numba dispatcher
    if py_func is not None:
        return getattr(py_func, "__module__", None)
    if isinstance(value, (types.FunctionType, type)):
        return getattr(value, "__module__", None)
    return None


def dependency_modules(module_name: str) -> list[str]:
    """Project modules reachable from ``module_name``'s globals (transitively), itself included, sorted."""
    top = {module_name.split(".")[0]} | PROJECT_PACKAGES
    seen: set[str] = set()
    todo = [module_name]
    while todo:
        name = todo.pop()
        if name in seen or name.split(".")[0] not in top:
            continue
        mod = sys.modules.get(name)
        if mod is None or getattr(mod, "__file__", None) is None:
            continue
        seen.add(name)
        package = getattr(mod, "__path__", None) is not None
        for value in list(vars(mod).values()):
            dep = _module_of(value)
            # A package's submodules are among its attributes only once something has imported them, which differs
            # from process to process: following them made the key depend on import order (hil.edgedrnn.kernel: 24
            # modules in a board process, 38 in a test worker), so processes kept overwriting each other's cache
            # entries and recompiling. A module that uses a submodule binds it by its own import and is followed.
            if package and isinstance(value, types.ModuleType) and dep is not None and dep.startswith(name + "."):
                continue
            if dep is not None and dep not in seen:
                todo.append(dep)
        # Parent packages run code on import (e.g. constants in __init__): count them too.
        if "." in name:
            todo.append(name.rsplit(".", 1)[0])
    return sorted(seen)


def dependency_digest(module_name: str) -> str:
    """Content hash of the source files of :func:`dependency_modules` (names included, so a move counts)."""
    h = hashlib.sha256()
    for name in dependency_modules(module_name):
        path = sys.modules[name].__file__
        assert path is not None
        st = os.stat(path)
        h.update(name.encode())
        h.update(_file_digest(path, st.st_mtime_ns, st.st_size))
    return h.hexdigest()


def _install_locator() -> bool:
    """Register the dependency-keyed locator with numba's cache; False if numba's internals have moved."""
    try:
        from numba.core import caching
    except ImportError:
        return False
    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)
    base = getattr(caching, "_CacheLocator", None)
    if impl is None or base is None or not isinstance(getattr(impl, "_locator_classes", None), list):
        return False

    class DependencyKeyedLocator(base):  # type: ignore[misc,valid-type]
        """numba's usual locator (same cache folder), with the dependency digest added to the source stamp."""

        def __init__(self, inner: Any, digest: str) -> None:
            self.inner = inner
            self.digest = digest

        def ensure_cache_path(self) -> None:
            self.inner.ensure_cache_path()

        def get_cache_path(self) -> str:
            return self.inner.get_cache_path()

        def get_source_stamp(self) -> Any:
            return (self.inner.get_source_stamp(), self.digest)

        def get_disambiguator(self) -> str:
            return self.inner.get_disambiguator()

        @classmethod
        def from_function(cls, py_func: Any, py_file: str) -> Any:
            digest = getattr(py_func, _DEPS_ATTR, None)
            if digest is None:
                return None  # not ours: numba's own locators handle it
            for other in registry:
                if other is cls:
                    continue
                inner = other.from_function(py_func, py_file)
                if inner is not None:
                    return cls(inner, digest)
            return None

    registry: list[Any] = impl._locator_classes
    if not any(getattr(c, "__name__", "") == "DependencyKeyedLocator" for c in registry):
        registry.insert(0, DependencyKeyedLocator)
    return True


_CACHE_OK = _install_locator()


def kernel(fn: F | None = None, **options: Any) -> Any:
    """``numba.njit(cache=True, **options)`` with a cache keyed by every reachable project module (see module doc).

    Use as ``@kernel`` or ``@kernel(fastmath=False, inline="always")``. Decorate after the module's imports (the
    dependency set is taken from the globals defined so far; imports come first in every module of this project).
    """
    options.pop("cache", None)

    def decorate(f: F) -> F:
        if not _CACHE_OK:
            _warn_no_cache()
            return njit(cache=False, **options)(f)
        setattr(f, _DEPS_ATTR, dependency_digest(f.__module__))
        return njit(cache=True, **options)(f)

    return decorate(fn) if fn is not None else decorate


@functools.lru_cache(maxsize=1)
def _warn_no_cache() -> None:
    warnings.warn(
        "numba's cache internals are not where envs.jit expects them: compiled kernels are not cached on disk "
        "(start-up is slower; results are unaffected)",
        RuntimeWarning,
        stacklevel=3,
    )


def cache_enabled() -> bool:
    """True when ``@kernel`` caches on disk with dependency keys (False: compiled fresh every process)."""
    return _CACHE_OK


__all__ = ["cache_enabled", "dependency_digest", "dependency_modules", "kernel"]
