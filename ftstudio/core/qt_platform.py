"""Can Qt's platform plugin load here? Checked before Qt starts, without importing Qt.

Qt's own message when its ``xcb`` plugin cannot load ("Could not load the Qt
platform plugin ...") names neither the missing system libraries nor the
packages that hold them. This module finds the plugin PySide6 will load,
asks the dynamic loader (``ldd``) which of its libraries are missing, and
turns them into the install line for the system's package manager.

Used by ``ftstudio`` before the window opens, by ``ftstudio doctor`` and by
``packaging/install.sh`` (``python -m ftstudio.core.qt_platform``). Standard
library only: it must run where Qt cannot.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

# The shared libraries Qt's platform plugins need from the system, and the package holding
# each on Debian/Ubuntu (apt), Fedora/RHEL (dnf) and Arch (pacman).
SYSTEM_PACKAGES: dict[str, tuple[str, str, str]] = {
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor", "xcb-util-cursor"),
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm", "xcb-util-wm"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image", "xcb-util-image"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms", "xcb-util-keysyms"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil", "xcb-util-renderutil"),
    "libxcb-util.so.1": ("libxcb-util1", "xcb-util", "xcb-util"),
    "libxcb-randr.so.0": ("libxcb-randr0", "libxcb", "libxcb"),
    "libxcb-render.so.0": ("libxcb-render0", "libxcb", "libxcb"),
    "libxcb-shape.so.0": ("libxcb-shape0", "libxcb", "libxcb"),
    "libxcb-shm.so.0": ("libxcb-shm0", "libxcb", "libxcb"),
    "libxcb-sync.so.1": ("libxcb-sync1", "libxcb", "libxcb"),
    "libxcb-xfixes.so.0": ("libxcb-xfixes0", "libxcb", "libxcb"),
    "libxcb-xkb.so.1": ("libxcb-xkb1", "libxcb", "libxcb"),
    "libxcb-xinput.so.0": ("libxcb-xinput0", "libxcb", "libxcb"),
    "libxcb-glx.so.0": ("libxcb-glx0", "libxcb", "libxcb"),
    "libxcb.so.1": ("libxcb1", "libxcb", "libxcb"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb", "libx11"),
    "libX11.so.6": ("libx11-6", "libX11", "libx11"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11", "libxkbcommon-x11"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon", "libxkbcommon"),
    "libwayland-client.so.0": ("libwayland-client0", "libwayland-client", "wayland"),
    "libwayland-cursor.so.0": ("libwayland-cursor0", "libwayland-cursor", "wayland"),
    "libwayland-egl.so.1": ("libwayland-egl1", "libwayland-egl", "wayland"),
    "libGL.so.1": ("libgl1", "libglvnd-glx", "libglvnd"),
    "libEGL.so.1": ("libegl1", "libglvnd-egl", "libglvnd"),
    "libOpenGL.so.0": ("libopengl0", "libglvnd-opengl", "libglvnd"),
    "libGLX.so.0": ("libglx0", "libglvnd-glx", "libglvnd"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig", "fontconfig"),
    "libfreetype.so.6": ("libfreetype6", "freetype", "freetype2"),
    "libdbus-1.so.3": ("libdbus-1-3", "dbus-libs", "dbus"),
    "libglib-2.0.so.0": ("libglib2.0-0", "glib2", "glib2"),
    "libgthread-2.0.so.0": ("libglib2.0-0", "glib2", "glib2"),
    "libSM.so.6": ("libsm6", "libSM", "libsm"),
    "libICE.so.6": ("libice6", "libICE", "libice"),
    "libXext.so.6": ("libxext6", "libXext", "libxext"),
    "libxshmfence.so.1": ("libxshmfence1", "libxshmfence", "libxshmfence"),
}
MANAGERS = ("apt", "dnf", "pacman")
INSTALL_COMMAND = {
    "apt": "sudo apt-get install -y",
    "dnf": "sudo dnf install -y",
    "pacman": "sudo pacman -S --needed",
}


@dataclass
class PlatformCheck:
    platform: str  # "xcb", "wayland", "offscreen", ...
    plugin: Path | None  # the plugin file Qt would load; None when not found
    missing: list[str] = field(default_factory=list)  # sonames the loader cannot find
    note: str = ""  # why the check could not be made, when it could not

    @property
    def ok(self) -> bool:
        return self.plugin is not None and not self.missing

    def system_missing(self) -> list[str]:
        return [lib for lib in self.missing if lib in SYSTEM_PACKAGES]

    def qt_missing(self) -> list[str]:
        """Missing libraries that come with PySide6 itself (a broken install, not a system package)."""
        return [lib for lib in self.missing if lib not in SYSTEM_PACKAGES]

    def message(self, manager: str | None = None) -> str:
        """What is wrong and what to do, in words (empty when the plugin loads)."""
        if self.ok:
            return ""
        if self.plugin is None:
            return (
                f"Qt's '{self.platform}' platform plugin was not found ({self.note}). Reinstall FT Studio "
                "(run packaging/install.sh again, or: pip install --force-reinstall PySide6-Essentials)."
            )
        lines = [
            f"The window cannot open: Qt's '{self.platform}' platform plugin ({self.plugin.name}) "
            f"needs libraries this system does not have: {', '.join(self.missing)}."
        ]
        if self.system_missing():
            lines.append("Install them with:")
            lines.extend(f"    {line}" for line in install_lines(self.system_missing(), manager))
        if self.qt_missing():
            lines.append(
                "The rest come with PySide6; reinstall it: pip install --force-reinstall "
                "PySide6-Essentials (or run packaging/install.sh again)."
            )
        return "\n".join(lines)


def package_manager(os_release: str | None = None) -> str | None:
    """'apt', 'dnf' or 'pacman' for this system (from /etc/os-release, else the commands on PATH)."""
    if os_release is None:
        try:
            os_release = Path("/etc/os-release").read_text(encoding="utf-8")
        except OSError:
            os_release = ""
    ids: list[str] = []
    for key in ("ID", "ID_LIKE"):
        m = re.search(rf"^{key}=\"?([^\"\n]*)\"?", os_release, flags=re.MULTILINE)
        if m:
            ids.extend(m.group(1).split())
    for family, manager in (
        ("debian", "apt"),
        ("ubuntu", "apt"),
        ("fedora", "dnf"),
        ("rhel", "dnf"),
        ("centos", "dnf"),
        ("arch", "pacman"),
    ):
        if family in ids:
            return manager
    for command, manager in (("apt-get", "apt"), ("dnf", "dnf"), ("pacman", "pacman")):
        if shutil.which(command):
            return manager
    return None


def install_lines(libraries: list[str], manager: str | None = None) -> list[str]:
    """The exact command (or, for an unknown system, one per package manager) that installs ``libraries``."""
    manager = manager or package_manager()
    managers = [manager] if manager in MANAGERS else list(MANAGERS)
    lines = []
    for m in managers:
        column = MANAGERS.index(m)
        packages = sorted({SYSTEM_PACKAGES[lib][column] for lib in libraries if lib in SYSTEM_PACKAGES})
        if packages:
            lines.append(f"{INSTALL_COMMAND[m]} {' '.join(packages)}")
    return lines


def default_platform(env: Mapping[str, str] | None = None) -> str:
    """The platform plugin Qt will try first: QT_QPA_PLATFORM, else Wayland in a Wayland session, else xcb."""
    env = os.environ if env is None else env
    requested = env.get("QT_QPA_PLATFORM", "").strip()
    if requested:
        return requested.split(";")[0].split(":")[0]
    if sys.platform == "darwin":
        return "cocoa"
    if sys.platform.startswith("win"):
        return "windows"
    if env.get("WAYLAND_DISPLAY") and env.get("XDG_SESSION_TYPE", "") == "wayland":
        return "wayland"
    return "xcb"


def plugin_dirs(env: Mapping[str, str] | None = None) -> list[Path]:
    """Where Qt looks for platform plugins: QT_QPA_PLATFORM_PLUGIN_PATH, then PySide6's own folder."""
    env = os.environ if env is None else env
    dirs = [Path(p) for p in env.get("QT_QPA_PLATFORM_PLUGIN_PATH", "").split(os.pathsep) if p]
    spec = importlib.util.find_spec("PySide6")  # finds the package without loading Qt
    if spec is not None and spec.submodule_search_locations:
        dirs.append(Path(list(spec.submodule_search_locations)[0]) / "Qt" / "plugins" / "platforms")
    return dirs


def find_plugin(platform: str, dirs: list[Path]) -> Path | None:
    for folder in dirs:
        for name in (f"libq{platform}.so", f"libq{platform}.dylib", f"q{platform}.dll"):
            if (folder / name).is_file():
                return folder / name
    return None


def missing_libraries(library: Path) -> list[str]:
    """The sonames the dynamic loader cannot find for ``library`` and what it needs, in ldd's order."""
    if shutil.which("ldd"):
        try:
            done = subprocess.run(["ldd", str(library)], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            done = None
        if done is not None:
            missing: list[str] = []
            for line in done.stdout.splitlines():
                m = re.match(r"\s*(\S+)\s+=>\s+not found", line)
                if m and m.group(1) not in missing:
                    missing.append(m.group(1))
            return missing
    # No ldd (musl, macOS): the loader's first complaint is all we can name.
    import ctypes

    try:
        ctypes.CDLL(str(library))
    except OSError as exc:
        m = re.search(r"([\w.+-]+\.so[\w.]*): cannot open shared object file", str(exc))
        return [m.group(1) if m else str(exc)]
    return []


def check_platform(platform: str | None = None, env: Mapping[str, str] | None = None) -> PlatformCheck:
    """Whether the platform plugin Qt will use (or ``platform``) can load, and what it lacks."""
    platform = platform or default_platform(env)
    if not sys.platform.startswith("linux"):
        return PlatformCheck(platform, Path(platform), note="only checked on Linux")
    dirs = plugin_dirs(env)
    plugin = find_plugin(platform, dirs)
    if plugin is None:
        where = ", ".join(str(d) for d in dirs) or "PySide6 is not installed"
        return PlatformCheck(platform, None, note=f"looked in {where}")
    if loads(plugin):
        return PlatformCheck(platform, plugin)
    return PlatformCheck(platform, plugin, missing_libraries(plugin))


def loads(library: Path) -> bool:
    """The dynamic loader opens ``library`` and everything it needs. The quick path before the
    window opens: Qt loads the same files next, so this costs next to nothing when all is well;
    only a failure asks ``ldd`` for the whole list."""
    import ctypes

    try:
        ctypes.CDLL(str(library))
    except OSError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check that Qt's platform plugin can load on this system")
    parser.add_argument("--platform", help="the plugin to check (default: the one Qt would use here)")
    args = parser.parse_args(argv)
    result = check_platform(args.platform)
    if result.ok:
        print(f"Qt's '{result.platform}' platform plugin loads ({result.plugin}).")
        return 0
    print(result.message())
    return 1


if __name__ == "__main__":
    sys.exit(main())
