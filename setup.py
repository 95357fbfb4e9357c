"""The wheel carries resources/ (the demo data, the icon, the Getting started guide) inside
the package as ``ftstudio/resources``: in a checkout and an editable install they are read
from the top-level folder, in an installed wheel from the package (see ftstudio/paths.py)."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class BuildWithResources(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "ftstudio" / "resources"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(HERE / "resources", target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildWithResources})
