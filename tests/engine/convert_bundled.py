"""Asks for the bundled model as a fresh process does (used by test_models_conversion.py).

    FTSTUDIO_CACHE_DIR=... python tests/engine/convert_bundled.py MARKERS NAME OTHER

Fault injection at ``models._convert_gguf`` (the conversion step): the process notes in MARKERS
that it converts, then holds its conversion until the process OTHER has asked for the model too,
so the two calls overlap for certain, whichever process gets to convert.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from ftstudio.engine import models

HANG_S = 600  # only catches a process that never asks; not a speed check


def main() -> None:
    markers, me, other = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    real_convert = models._convert_gguf

    def convert(gguf: Path, out: Path) -> None:
        (markers / f"converting-{me}").touch()
        end = time.monotonic() + HANG_S
        while not (markers / f"asked-{other}").exists():
            if time.monotonic() > end:
                raise TimeoutError(f"{other} never asked for the model")
            threading.Event().wait(0.05)
        real_convert(gguf, out)

    models._convert_gguf = convert
    (markers / f"asked-{me}").touch()
    print(models.bundled_model_dir())


if __name__ == "__main__":
    main()
