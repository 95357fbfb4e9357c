#!/usr/bin/env bash
# Removes what packaging/install.sh added: the private environment, the launcher, the
# desktop entry, the icons and the AppStream metadata, and the app's settings and logs.
# Projects and models are kept unless asked:
#
#   uninstall.sh                    # keeps projects and the models FT Studio prepared or downloaded
#   uninstall.sh --remove-models    # also FT Studio's model cache (~/.cache/ftstudio)
#   uninstall.sh --remove-projects  # also the projects in ~/.local/share/ftstudio (the demo, ...)
#
# Models downloaded from the Hugging Face hub live in its shared cache (~/.cache/huggingface),
# which other programs use too: remove them there with `hf cache delete`.
set -euo pipefail

REMOVE_MODELS=""
REMOVE_PROJECTS=""
while [ $# -gt 0 ]; do
    case "$1" in
        --remove-models) REMOVE_MODELS=1 ;;
        --remove-projects) REMOVE_PROJECTS=1 ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "uninstall.sh: unknown option '$1' (see uninstall.sh --help)" >&2; exit 2 ;;
    esac
    shift
done

DATA_HOME="${XDG_DATA_HOME:-$HOME/.local/share}"
FT_DATA="$DATA_HOME/ftstudio"
MANIFEST="$FT_DATA/installed-files.txt"
CACHE="${FTSTUDIO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ftstudio}"
SETTINGS="${XDG_CONFIG_HOME:-$HOME/.config}/FT Studio"

remove_listed() {  # every path the installer listed, and the list itself
    while IFS= read -r path; do
        case "$path" in ''|'#'*) continue ;; esac
        # Only what the installer wrote under the home folder, whatever the list says.
        case "$path" in "$HOME"/*|"$DATA_HOME"/*) ;; *) echo "skipping $path (outside your home folder)"; continue ;; esac
        if [ -e "$path" ] || [ -L "$path" ]; then
            rm -rf -- "$path"
            removed=$((removed + 1))
        fi
    done < "$MANIFEST"
    rm -f "$MANIFEST"
}

removed=0
if [ -f "$MANIFEST" ]; then
    remove_listed
else
    echo "FT Studio is not installed here (no $MANIFEST)."
    [ -n "$REMOVE_MODELS$REMOVE_PROJECTS" ] || exit 0
fi
# The caches the desktop's tools keep beside the entry and the icons: removed with their folder
# when nothing else is left in it, else rebuilt without FT Studio.
prune_cache() {  # prune_cache DIR CACHE_FILE REBUILD_COMMAND...
    dir="$1"; cache="$2"; shift 2
    [ -d "$dir" ] || return 0
    if [ -z "$(find "$dir" -type f ! -name "$cache" | head -n 1)" ]; then
        rm -rf -- "$dir"
    elif command -v "$1" >/dev/null; then
        "$@" 2>/dev/null || true
    fi
}
prune_cache "$DATA_HOME/icons/hicolor" icon-theme.cache gtk-update-icon-cache -q -t "$DATA_HOME/icons/hicolor"
prune_cache "$DATA_HOME/applications" mimeinfo.cache update-desktop-database -q "$DATA_HOME/applications"
# Folders the installer made that are now empty (icons/hicolor/48x48/apps, metainfo, ...).
for dir in "$DATA_HOME/icons" "$DATA_HOME/applications" "$DATA_HOME/metainfo"; do
    if [ -d "$dir" ]; then find "$dir" -depth -type d -empty -delete 2>/dev/null || true; fi
done

rm -rf -- "$SETTINGS" "$CACHE/logs"
if [ -n "$REMOVE_MODELS" ]; then
    rm -rf -- "$CACHE"
    echo "Removed FT Studio's model cache ($CACHE)."
else
    [ -d "$CACHE" ] && find "$CACHE" -depth -type d -empty -delete 2>/dev/null || true
fi
if [ -n "$REMOVE_PROJECTS" ]; then
    rm -rf -- "$FT_DATA"
    echo "Removed the projects in $FT_DATA."
else
    [ -d "$FT_DATA" ] && find "$FT_DATA" -depth -type d -empty -delete 2>/dev/null || true
fi
echo "FT Studio is uninstalled ($removed items removed)."
[ -n "$REMOVE_PROJECTS" ] || [ ! -d "$FT_DATA" ] || echo "Your projects are kept in $FT_DATA."
[ -n "$REMOVE_MODELS" ] || [ ! -d "$CACHE" ] || echo "Prepared models are kept in $CACHE (uninstall.sh --remove-models removes them)."
