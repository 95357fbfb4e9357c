"""The Qt pre-check: the platform plugin's missing libraries, found by the dynamic loader
on a library set that lacks them, named with the install line, before Qt starts."""

import ctypes
import os
import shutil
import subprocess
import sys

import pytest
from qt_libraries import QT, library_set

from ftstudio.core import qt_platform
from ftstudio.core.qt_platform import check_platform, install_lines, package_manager

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not (QT / "plugins").is_dir(),
    reason="the pre-check reads ELF libraries (Linux)",
)


def test_a_library_set_without_qts_xcb_library_is_named(tmp_path):
    platforms = library_set(tmp_path, leave_out={"libQt6XcbQpa.so.6"})
    result = check_platform("xcb", env={"QT_QPA_PLATFORM_PLUGIN_PATH": str(platforms)})
    assert result.plugin == platforms / "libqxcb.so"
    assert not result.ok
    assert "libQt6XcbQpa.so.6" in result.missing
    assert result.qt_missing() == ["libQt6XcbQpa.so.6"]
    message = result.message("apt")
    assert "libQt6XcbQpa.so.6" in message and "pip install --force-reinstall PySide6-Essentials" in message


def test_the_system_libraries_named_are_exactly_those_the_loader_cannot_open(tmp_path):
    platforms = library_set(tmp_path, leave_out=set())
    result = check_platform("xcb", env={"QT_QPA_PLATFORM_PLUGIN_PATH": str(platforms)})
    assert result.qt_missing() == []
    needed = (
        subprocess.run(
            ["readelf", "-d", str(platforms / "libqxcb.so")], capture_output=True, text=True
        ).stdout
        if shutil.which("readelf")
        else ""
    )
    for soname in qt_platform.SYSTEM_PACKAGES:
        if soname not in needed:
            continue
        try:
            ctypes.CDLL(soname)
            loadable = True
        except OSError:
            loadable = False
        assert (soname in result.missing) == (not loadable), soname
    if result.missing:  # on this machine (Debian without X) libxcb-icccm4 and libxcb-keysyms1 are absent
        line = install_lines(result.missing, "apt")[0]
        for soname in result.missing:
            assert qt_platform.SYSTEM_PACKAGES[soname][0] in line.split()
        assert line.startswith("sudo apt-get install -y ")


def test_offscreen_loads_here():
    assert check_platform("offscreen").ok


def test_no_plugin_at_all_says_to_reinstall(tmp_path):
    env = {"QT_QPA_PLATFORM_PLUGIN_PATH": str(tmp_path)}
    result = check_platform("nosuchplatform", env=env)
    assert result.plugin is None
    assert "reinstall" in result.message().lower()


def test_install_line_for_each_package_manager():
    libs = ["libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxkbcommon-x11.so.0"]
    assert install_lines(libs, "apt") == [
        "sudo apt-get install -y libxcb-cursor0 libxcb-icccm4 libxkbcommon-x11-0"
    ]
    assert install_lines(libs, "dnf") == ["sudo dnf install -y libxkbcommon-x11 xcb-util-cursor xcb-util-wm"]
    assert install_lines(libs, "pacman") == [
        "sudo pacman -S --needed libxkbcommon-x11 xcb-util-cursor xcb-util-wm"
    ]


def test_package_manager_from_os_release():
    assert package_manager("ID=ubuntu\nID_LIKE=debian\n") == "apt"
    assert package_manager('ID="rocky"\nID_LIKE="rhel centos fedora"\n') == "dnf"
    assert package_manager("ID=manjaro\nID_LIKE=arch\n") == "pacman"


def test_ftstudio_prints_the_missing_libraries_instead_of_qts_abort(tmp_path):
    platforms = library_set(tmp_path, leave_out={"libQt6XcbQpa.so.6"})
    env = dict(
        os.environ,
        QT_QPA_PLATFORM="xcb",
        QT_QPA_PLATFORM_PLUGIN_PATH=str(platforms),
        DISPLAY=":99",
        FTSTUDIO_SETTINGS=str(tmp_path / "settings.ini"),
    )
    done = subprocess.run(
        [sys.executable, "-m", "ftstudio.cli"], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 1
    assert "libQt6XcbQpa.so.6" in done.stderr
    assert "Could not load the Qt platform plugin" not in done.stderr + done.stdout
    assert "Traceback" not in done.stderr
