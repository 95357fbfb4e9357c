"""The desktop app (PySide6 + pyqtgraph): the main window, its pages, and the
workers that run engine calls on QThreads. Nothing here imports torch at
module level."""
