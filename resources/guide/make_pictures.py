"""Makes the guide's pictures from the app's screenshots (docs/screenshots, made by
``python -m ftstudio.gui.screenshots docs/screenshots``), scaled to the guide's width.

    QT_QPA_PLATFORM=offscreen python resources/guide/make_pictures.py
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage

HERE = Path(__file__).resolve().parent
SHOTS = HERE.parents[1] / "docs" / "screenshots"
PICTURES = {  # guide picture: screenshot
    "data.png": "data.png",
    "label.png": "label.png",
    "train.png": "train.png",
    "compare.png": "compare-blind.png",
    "runs.png": "runs.png",
}
WIDTH = 720


def main() -> None:
    app = QGuiApplication.instance() or QGuiApplication([])
    out = HERE / "getting-started"
    out.mkdir(exist_ok=True)
    for name, shot in PICTURES.items():
        image = QImage(str(SHOTS / shot))
        image.scaledToWidth(WIDTH, Qt.TransformationMode.SmoothTransformation).save(str(out / name))
    del app


if __name__ == "__main__":
    main()
