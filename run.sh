#!/usr/bin/env bash
# medapp's one entry point for a fresh machine:
#   ./run.sh [medapp arguments]   set up (first time only) and start medapp; no arguments opens the window
#   ./run.sh test [pytest args]   set up, install the test tools, and run the whole test suite
#   ./run.sh bench [names]        set up and run the benchmarks in bench/ (ratios measured in one run)
# Set-up is a virtual environment in .venv (override with MEDAPP_VENV), reinstalled when pyproject.toml changes.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
venv=${MEDAPP_VENV:-$here/.venv}
python=${MEDAPP_PYTHON:-$(command -v python3.11 || command -v python3)}

setup_venv() {
  if [ ! -x "$venv/bin/python" ]; then
    echo "medapp: creating $venv" >&2
    "$python" -m venv "$venv"
  fi
  local stamp="$venv/.medapp-installed"
  if [ ! -f "$stamp" ] || [ "$here/pyproject.toml" -nt "$stamp" ]; then
    "$venv/bin/python" -m pip install -q --upgrade pip >&2
    # torch first and pinned: on a CPU-only machine this is the CPU build; on a Linux GPU workstation PyPI's
    # torch 2.13.0 is the CUDA 12 build (see README). Installing it first keeps pip from choosing a newer CUDA build.
    if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
      "$venv/bin/python" -m pip install -q "torch==2.13.0" >&2
    fi
    "$venv/bin/python" -m pip install -q -e "$here[test]" >&2
    touch "$stamp"
  fi
}

setup_test_tools() {
  # pdftoppm/pdftotext render report PDFs to PNG in tests; the xcb libraries let Qt open a real X window under Xvfb.
  local need=()
  command -v pdftoppm >/dev/null || need+=(poppler-utils)
  command -v Xvfb >/dev/null || need+=(xvfb)
  dpkg -s libxcb-icccm4 >/dev/null 2>&1 || need+=(libxcb-icccm4)
  dpkg -s libxcb-keysyms1 >/dev/null 2>&1 || need+=(libxcb-keysyms1)
  command -v Orthanc >/dev/null || need+=(orthanc)
  if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "medapp: installing ${need[*]}" >&2
      apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
    else
      echo "medapp: please install these system packages for the tests: ${need[*]}" >&2
    fi
  fi
}

case "${1:-}" in
  test)
    shift
    setup_venv
    setup_test_tools
    export QT_QPA_PLATFORM=${QT_QPA_PLATFORM:-offscreen}
    cd "$here"
    exec "$venv/bin/python" -m pytest "$@"
    ;;
  bench)
    shift
    setup_venv
    cd "$here"
    exec "$venv/bin/python" -m bench "$@"
    ;;
  *)
    setup_venv
    exec "$venv/bin/medapp" "$@"
    ;;
esac
