"""Widgets: they take a view-model and render it; they never decide anything themselves.

A workaround lives here, where every screen is imported. The PySide6 the app pins (6.12.0) running
on Python 3.11 (Debian 12's, the package's) drops one reference to None on each call of a Qt method
returning nothing (label.setText, widget.update: measured -100 over 100 calls) and one to True or
False on each bool passed through a Python signal (300 emits of Signal(object) with False abort the
interpreter: "Fatal Python error: bool_dealloc"). Python 3.12 made these objects immortal, so the
binding no longer counts them there; on 3.11 a long session, or a long test run at its exit, ends
in such an abort. The references held below (about 11 MB) keep the counts positive for millions of
calls; the list is given one reference of its own that is never released, so it outlives the
interpreter's final clean-up too. Remove it when the pinned PySide6 keeps its counts on 3.11."""

import ctypes
import sys

_REFERENCE_BALLAST: list[object] = []
if sys.version_info < (3, 12):
    _REFERENCE_BALLAST = [None] * 1_000_000 + [True] * 200_000 + [False] * 200_000
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(_REFERENCE_BALLAST))
