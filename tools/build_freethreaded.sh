#!/usr/bin/env bash
# Build free-threaded CPython 3.13t (--disable-gil) once, cache it outside the
# checkout, and keep a venv beside it with the test tools.  Idempotent: when
# the cached interpreter and venv exist and work, it only prints the venv's
# interpreter path.
#
#   tools/build_freethreaded.sh            # build (first time) and print the path
#   "$(tools/build_freethreaded.sh)" -m pytest ...
#
# Environment:
#   COROSIO_FT_PREFIX  install prefix (default ~/.cache/corosio_py/python3.13t,
#                      under XDG_CACHE_HOME when that is set);
#                      the venv is $COROSIO_FT_PREFIX/venv
#   COROSIO_FT_JOBS    parallel make jobs (default 2)
#   COROSIO_FT_MIRROR  Debian mirror URI for the source package (default: the
#                      mirror of this machine's own Debian apt sources)
#
# The source is Debian's python3.13 package from the trixie suite, fetched with
# apt-get against a private source list, so the machine's own apt state is not
# touched.  Only the upstream tarball is used; Debian's patches are not applied.
# All progress goes to stderr; stdout holds only the interpreter path.
set -euo pipefail

# HOME may be unset under a CI runner: fall back to the user's home directory.
CACHE_ROOT="${XDG_CACHE_HOME:-${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}/.cache}"
PREFIX="${COROSIO_FT_PREFIX:-$CACHE_ROOT/corosio_py/python3.13t}"
VENV="$PREFIX/venv"
PY="$PREFIX/bin/python3.13t"
VPY="$VENV/bin/python"
JOBS="${COROSIO_FT_JOBS:-2}"
SUITE=trixie
SRCPKG=python3.13
REPO_ROOT="$(cd "$(dirname "$0")/.." && pwd)"

# hypothesis: the release pinned in pyproject.toml ships no wheel for cp313t;
# 6.155.7 is the newest release that `pip install --only-binary=:all:
# hypothesis` picks on 3.13t (a py3-none-any wheel).  The other pins come from
# pyproject.toml's `test` extra.
FT_OVERRIDES="hypothesis==6.155.7"

log() { printf '== build_freethreaded: %s\n' "$*" >&2; }
die() { printf '== build_freethreaded: ERROR: %s\n' "$*" >&2; exit 1; }

# The test requirements: pyproject's `test` extra with FT_OVERRIDES applied,
# one per line.  Needs a Python 3.11+ (tomllib) to read pyproject.toml.
requirements() {
    "$1" - "$REPO_ROOT/pyproject.toml" "$FT_OVERRIDES" <<'EOF'
import re, sys, tomllib
with open(sys.argv[1], "rb") as f:
    reqs = tomllib.load(f)["project"]["optional-dependencies"]["test"]
over = {re.split(r"[=<>!~ ]", o, maxsplit=1)[0].lower(): o for o in sys.argv[2].split()}
for r in reqs:
    print(over.get(re.split(r"[=<>!~ \[]", r, maxsplit=1)[0].lower(), r))
EOF
}

# True when the cached build and venv work: a free-threaded interpreter with
# the GIL off, the test tools importable, and the venv installed from the
# current requirement list.
cache_ok() {
    [ -x "$VPY" ] && [ -f "$VENV/.corosio_requirements" ] || return 1
    [ "$(requirements "$VPY" 2>/dev/null)" = "$(cat "$VENV/.corosio_requirements")" ] || return 1
    "$VPY" -c '
import sys, sysconfig
import pytest, pytest_timeout, hypothesis
assert sysconfig.get_config_var("Py_GIL_DISABLED") == 1, "not a free-threaded build"
assert not sys._is_gil_enabled(), "GIL is enabled"
' >/dev/null 2>&1
}

# One build at a time per prefix (two `make test-ft` started together).
mkdir -p "$(dirname "$PREFIX")"
exec 9>"$PREFIX.lock"
flock 9

if cache_ok; then
    echo "$VPY"
    exit 0
fi

START=$(date +%s)

# ---------------------------------------------------------------- interpreter
if ! { [ -x "$PY" ] && "$PY" -c 'import sys, ssl, zlib, ctypes; assert not sys._is_gil_enabled()' 2>/dev/null; }; then
    command -v apt-get >/dev/null || die "apt-get is needed to fetch the Debian source package"

    # Build dependencies (the optional stdlib modules the tests and pip need).
    deps="build-essential pkg-config xz-utils libssl-dev libffi-dev zlib1g-dev libbz2-dev
          liblzma-dev libsqlite3-dev libreadline-dev libncurses-dev uuid-dev libgdbm-dev"
    missing=""
    for p in $deps; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
    if [ -n "$missing" ]; then
        if [ "$(id -u)" = 0 ]; then
            log "installing build dependencies:$missing"
            # shellcheck disable=SC2086
            apt-get install -y -q $missing >&2 \
                || { apt-get update -q >&2 && apt-get install -y -q $missing >&2; }
        else
            log "missing build dependencies (not root, continuing without):$missing"
        fi
    fi

    # The Debian mirror URI: the one serving this machine's own release
    # (VERSION_CODENAME) in its apt sources, deb822 .sources or one-line .list.
    mirror="${COROSIO_FT_MIRROR:-}"
    if [ -z "$mirror" ]; then
        codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
        mirror="$(
            for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
                     /etc/apt/sources.list.d/*.sources; do
                [ -f "$f" ] || continue
                case "$f" in
                *.sources)
                    # deb822 stanzas: print "URI SUITE..." per stanza.
                    awk 'BEGIN { RS=""; FS="\n" }
                         { u=""; s=""; t=""
                           for (i = 1; i <= NF; i++) {
                               if ($i ~ /^URIs:/)   { u=$i; sub(/^URIs:[ \t]*/, "", u) }
                               if ($i ~ /^Suites:/) { s=$i; sub(/^Suites:[ \t]*/, "", s) }
                               if ($i ~ /^Types:/)  { t=$i }
                               if ($i ~ /^Enabled:[ \t]*no/) { u="" }
                           }
                           if (u != "" && t ~ /deb/) { split(u, us, /[ \t]+/); print us[1], s } }' "$f" ;;
                *)
                    # One-line entries: deb [options] URI SUITE COMPONENTS...
                    sed -E -n 's/^[ \t]*deb(-src)?[ \t]+(\[[^]]*\][ \t]+)?([^ \t]+)[ \t]+([^ \t]+).*/\3 \4/p' "$f" ;;
                esac
            done | awk -v c="$codename" '
                { for (i = 2; i <= NF; i++) if ($i == c) { print $1; exit } }'
        )"
    fi
    [ -n "$mirror" ] || die "no Debian mirror found in /etc/apt/sources.list*; set COROSIO_FT_MIRROR"

    WORK="$(mktemp -d "$PREFIX.build.XXXXXX")"
    trap 'rm -rf "$WORK"' EXIT
    apt_dir="$WORK/apt"
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
    signed=""
    [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] \
        && signed="[signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
    echo "deb-src ${signed}${mirror} $SUITE main" >"$apt_dir/sources.list"
    apt_opts=(
        -o "Dir::Etc::sourcelist=$apt_dir/sources.list"
        -o "Dir::Etc::sourceparts=-"
        -o "Dir::State::Lists=$apt_dir/lists"
        -o "Dir::Cache=$apt_dir/cache"
        -o "APT::Get::List-Cleanup=0"
    )
    # apt drops to the _apt user for downloads; it cannot write under a
    # private directory in root's home, so download as root.
    [ "$(id -u)" = 0 ] && apt_opts+=(-o "APT::Sandbox::User=root")

    log "fetching the $SRCPKG source package ($SUITE) from the machine's Debian mirror"
    apt-get "${apt_opts[@]}" update -q >&2
    (cd "$WORK" && apt-get "${apt_opts[@]}" source --download-only -q "$SRCPKG/$SUITE" >&2)
    orig="$(ls "$WORK"/"${SRCPKG}"_*.orig.tar.* 2>/dev/null | head -1)"
    [ -n "$orig" ] || die "no upstream tarball in the $SRCPKG source package"
    log "unpacking $(basename "$orig")"
    mkdir "$WORK/src"
    tar -xf "$orig" -C "$WORK/src"
    srcdir="$(dirname "$(ls "$WORK"/src/*/configure | head -1)")"
    [ -x "$srcdir/configure" ] || die "no configure script in $orig"

    # The log lives beside the prefix: the work tree goes, even on failure.
    build_log="$PREFIX.build.log"
    log "configure --disable-gil --prefix=$PREFIX; make -j$JOBS; make install (log: $build_log)"
    (
        cd "$srcdir"
        ./configure --disable-gil --prefix="$PREFIX" --with-ensurepip=install
        make -j"$JOBS"
        make install
    ) >"$build_log" 2>&1 || { tail -40 "$build_log" >&2; die "build failed (log: $build_log)"; }
    [ -x "$PY" ] || die "make install did not produce $PY"
    rm -rf "$WORK"
    trap - EXIT
fi

# ----------------------------------------------------------------------- venv
reqs="$(requirements "$PY")"
log "venv $VENV with: $(echo "$reqs" | tr '\n' ' ')"
rm -rf "$VENV"
"$PY" -m venv "$VENV"
# shellcheck disable=SC2086
"$VPY" -m pip install -q --only-binary=:all: $reqs >&2
echo "$reqs" >"$VENV/.corosio_requirements"
cache_ok || die "the venv at $VENV does not work (GIL enabled or test tools missing)"

log "done in $(( $(date +%s) - START )) s; GIL enabled: $("$VPY" -c 'import sys; print(sys._is_gil_enabled())')"
echo "$VPY"
