"""Named slots of a flat float64 state array, as attributes.

Compiled kernels (numba) keep a controller's or the virtual human's state in one float64 array they update in
place; :class:`StateSlot` gives each slot a documented attribute name on the Python object that owns the array, so
callers read ``pd.knee_des`` instead of ``pd._s[S_KNEE_DES]``. Read-only unless declared writable.
"""

from __future__ import annotations

from typing import Any


class StateSlot:
    """Attribute for element ``index`` of the array held in the owner's attribute ``array``, converted by ``kind``."""

    def __init__(self, array: str, index: int, kind: type = float, doc: str = "", writable: bool = False) -> None:
        self.array, self.index, self.kind, self.writable = array, index, kind, writable
        self.__doc__ = doc
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        return self.kind(getattr(obj, self.array)[self.index])

    def __set__(self, obj: Any, value: Any) -> None:
        if not self.writable:
            raise AttributeError(f"{type(obj).__name__}.{self.name} is read-only")
        getattr(obj, self.array)[self.index] = value
