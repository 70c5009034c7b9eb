#!/bin/sh
# Set-up in one command: a virtual environment in .venv/ with storyboard and its test tools, then the
# example film built offline by the animatic provider (examples/lighthouse/build/lighthouse.mp4).
# Needs only Python 3.11+ and the package registries; PYTHON=/path/to/python picks the interpreter.
set -eu
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "setup: storyboard needs Python 3.11 or newer; run PYTHON=/path/to/python3.11 ./setup.sh" >&2
  exit 1
fi
if ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
  rm -rf .venv
  if ! "$PYTHON" -m venv .venv >/dev/null 2>&1; then
    # Debian and Ubuntu ship venv's pip bootstrap separately, as pythonX.Y-venv
    rm -rf .venv
    venv_package="python$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv"
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "setup: installing $venv_package (Python's venv lacks pip here)" >&2
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$venv_package" >/dev/null
      "$PYTHON" -m venv .venv
    else
      echo "setup: cannot make a virtual environment: install $venv_package (sudo apt-get install $venv_package) and run ./setup.sh again" >&2
      exit 1
    fi
  fi
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
# an editable install leaves the package uncompiled; where PYTHONDONTWRITEBYTECODE is set, every
# `storyboard` run (the tests start hundreds) would compile it again, as an installed package never does
.venv/bin/python -m compileall -q storyboard
.venv/bin/storyboard build examples/lighthouse/storyboard.toml
echo "setup: done; the tests: .venv/bin/python -m pytest -q; the CLI: .venv/bin/storyboard (or . .venv/bin/activate)"
