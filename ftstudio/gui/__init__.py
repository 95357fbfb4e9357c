"""The desktop app (PySide6). Importing any part of it first applies the guard below."""

import sys as _sys

if _sys.version_info < (3, 12):  # pragma: no cover - depends on the interpreter
    # PySide6 6.12 gives back None from its void methods without taking a new
    # reference to it: every call such as ``label.setText(...)`` lowers None's
    # reference count by one. From Python 3.12 None is immortal and this does
    # no harm; on 3.11 the count reaches zero after some thousands of calls and
    # the interpreter aborts ("none_dealloc: deallocating None"). Give None a
    # reference count no program can use up, which is what 3.12 does.
    # The same holds for True and False: ``Signal.emit`` gives back True
    # without a reference, so each emit lowers True's count by one.
    import ctypes as _ctypes

    for _constant in (None, True, False):
        _refcount = _ctypes.c_ssize_t.from_address(id(_constant))
        if _refcount.value < 1 << 40:
            _refcount.value += 1 << 50
    del _ctypes, _refcount, _constant
del _sys
