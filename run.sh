#!/usr/bin/env bash
# medapp's one entry point for a fresh machine:
#   ./run.sh [medapp arguments]   set up (first time only) and start medapp; no arguments opens the window
#   ./run.sh test [pytest args]   set up, install the test tools, and run the whole test suite
#   ./run.sh test-latest          the model, job and CLI tests in a throw-away venv with the newest allowed releases
#   ./run.sh lock                 refresh requirements/medapp.lock from pyproject.toml (on purpose, then commit it)
#   ./run.sh bench [names]        set up and run the benchmarks in bench/ (ratios measured in one run)
# Set-up is a virtual environment in .venv (override with MEDAPP_VENV), installed from requirements/medapp.lock and
# reinstalled whenever the lock or pyproject.toml changes.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
venv=${MEDAPP_VENV:-$here/.venv}
python=${MEDAPP_PYTHON:-$(command -v python3.11 || command -v python3)}
lock="$here/requirements/medapp.lock"
# torch stays out of the lock: pip installs this exact release first, and it decides the build by the machine
# (the CPU wheel here, the CUDA 12 build on a Linux GPU workstation from PyPI; see README "GPU workstations").
TORCH_VERSION=2.13.0
UV_VERSION=0.13.9

pip_quiet() {
  # pip on some machines reads extra local indexes and warns about each missing folder in them: keep real errors only.
  "$1" -m pip "${@:2}" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}

install_torch() {  # $1 = python of the venv
  if ! "$1" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
    pip_quiet "$1" install -q "torch==$TORCH_VERSION" >&2
  fi
}

setup_venv() {
  if [ ! -x "$venv/bin/python" ]; then
    echo "medapp: creating $venv" >&2
    "$python" -m venv "$venv"
  fi
  local stamp="$venv/.medapp-installed" want
  want=$(cat "$lock" "$here/pyproject.toml" | sha256sum | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "medapp: installing from requirements/medapp.lock" >&2
    install_torch "$venv/bin/python"
    # Exact versions and hashes for everything but torch; --no-deps because the lock already holds the whole set.
    pip_quiet "$venv/bin/python" install -q --no-deps --require-hashes -r "$lock" >&2
    pip_quiet "$venv/bin/python" install -q --no-deps --no-build-isolation -e "$here" >&2  # [test,cluster] are in the lock
    "$venv/bin/python" -m pip check >&2 || { echo "medapp: the installed set is inconsistent (see above)" >&2; exit 1; }
    echo "$want" > "$stamp"
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

refresh_lock() {
  # uv resolves the whole set for Python 3.11 on Linux x86_64 and writes exact versions with hashes. torch is resolved
  # (everything else must agree with it) but not written: its build differs per machine. uv reads none of pip's
  # configuration, so a folder holding the CPU torch wheel is passed from the environment (never written in the repo);
  # otherwise uv would resolve torch's CUDA dependencies into the lock.
  # uv lives in its own small venv: the app's venv may not install while the lock is being refreshed.
  local tools="$here/.tools"
  [ -x "$tools/bin/uv" ] && [ "$("$tools/bin/uv" --version | cut -d' ' -f2)" = "$UV_VERSION" ] || {
    "$python" -m venv "$tools" && pip_quiet "$tools/bin/python" install -q "uv==$UV_VERSION" >&2; }
  local links=${MEDAPP_TORCH_WHEELS:-$("$python" -m pip config get global.find-links 2>/dev/null || true)}
  local args=()
  [ -n "$links" ] && args+=(--find-links "$links")
  (cd "$here" && "$tools/bin/uv" pip compile pyproject.toml requirements/build.in --extra test --extra cluster \
      --python-version 3.11 --python-platform x86_64-manylinux_2_34 --generate-hashes \
      --no-emit-package torch --custom-compile-command "./run.sh lock" "${args[@]}" \
      -o requirements/medapp.lock "$@")
  if grep -Eq '^(nvidia-|triton==)' "$lock"; then
    echo "medapp: the lock picked up torch's CUDA packages; set MEDAPP_TORCH_WHEELS to a folder (or index) with the" \
         "CPU wheel torch==$TORCH_VERSION+cpu and run ./run.sh lock again" >&2
    exit 1
  fi
}

test_latest() {
  # The registry moves: this installs the newest release of every dependency that pyproject.toml allows into a
  # throw-away venv (no lock) and runs the tests that touch the moving parts (model, jobs, CLI). Run it before a
  # landing and before refreshing the lock; a failure here is a break a fresh `pip install medapp` would hit.
  latest_tmp=$(mktemp -d "${TMPDIR:-/tmp}/medapp-latest.XXXXXX")
  trap 'rm -rf "$latest_tmp"' EXIT
  local py="$latest_tmp/venv/bin/python"
  "$python" -m venv "$latest_tmp/venv"
  install_torch "$py"
  pip_quiet "$py" install -q --upgrade --upgrade-strategy eager -e "$here[test,cluster]" >&2
  echo "medapp: newest allowed releases that differ from requirements/medapp.lock:" >&2
  "$py" - "$lock" <<'PY' >&2
import re, sys
from importlib import metadata
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
locked = {norm(n): v for n, v in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", open(sys.argv[1]).read(), re.M)}
changed = [f"  {d.metadata['Name']} {locked[norm(d.metadata['Name'])]} -> {d.version}" for d in metadata.distributions()
           if norm(d.metadata["Name"]) in locked and locked[norm(d.metadata["Name"])] != d.version]
print("\n".join(sorted(changed)) or "  none: the lock holds the newest allowed releases")
PY
  cd "$here"
  QT_QPA_PLATFORM=offscreen "$py" -m pytest -p no:cacheprovider tests/models tests/medapp "$@"
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
  test-latest)
    shift
    test_latest "$@"
    ;;
  lock)
    shift
    refresh_lock "$@"
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
