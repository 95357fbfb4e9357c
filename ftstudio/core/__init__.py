"""Pure-Python core: project database, examples, formats, validation, config, events.

Nothing here imports Qt or torch, so every part of it can be used and tested
without a display or a GPU.
"""
