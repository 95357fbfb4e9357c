"""Label a project through the real Label page, offscreen, by key presses, until killed.

    python labelling_kill_helper.py PROJECT_FOLDER

Presses 1, 2, 3, 1, 2, 3, ... on the page, one key per turn of the event
loop, and prints ``CONFIRMED <example id> <label>`` after the page says the
label is committed (its ``saved`` signal). Used by the kill test in
test_labelling.py, which SIGKILLs this process mid-way.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def main(folder: str) -> int:
    from PySide6.QtCore import Qt, QTimer
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from ftstudio.core.project import Project
    from ftstudio.gui.context import ProjectContext
    from ftstudio.gui.labelling.page import LabellingPage
    from ftstudio.gui.style import apply_style

    app = QApplication([sys.argv[0]])
    apply_style(app)
    project = Project.open(folder)
    context = ProjectContext(project, actor="killtest")
    page = LabellingPage(context)
    page.resize(1104, 740)
    page.show()
    keys = [Qt.Key.Key_1, Qt.Key.Key_2, Qt.Key.Key_3]
    presses = [0]

    def confirmed(example_id: int) -> None:
        ex = project.get_example(example_id)  # read back what was committed
        print(f"CONFIRMED {example_id} {ex.label}", flush=True)

    page.saved.connect(confirmed)

    def press() -> None:
        if page.mode.current_id is None:
            print("DONE", flush=True)
            app.quit()
            return
        QTest.keyClick(page, keys[presses[0] % len(keys)])
        presses[0] += 1
        QTimer.singleShot(0, press)

    print("READY", flush=True)
    QTimer.singleShot(0, press)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
