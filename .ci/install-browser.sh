#!/usr/bin/env bash
# Installs what tests/browser/ needs: Debian's chromium and chromedriver (apt)
# and selenium (pip, into the Python that runs pytest: $PYTHON, else the
# active virtualenv's or the first python3 on PATH).
#
# Idempotent: each piece is installed only when it is missing, so a second run
# does no network access at all. Non-interactive; run it as root (apt-get).
#
#   bash .ci/install-browser.sh            # or: PYTHON=.venv/bin/python bash ...
#
# Never downloads a browser build of its own: chromium comes from Debian, and
# selenium is pointed at /usr/bin/chromium and /usr/bin/chromedriver (so its
# "selenium manager" never fetches a driver).
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
PYTHON="${PYTHON:-$(command -v python || command -v python3)}"
SELENIUM_SPEC="${SELENIUM_SPEC:-selenium>=4.20,<5}"

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    echo "install-browser: chromium and chromedriver already installed"
else
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-browser: need root to apt-get install chromium chromium-driver" >&2
        exit 1
    fi
    echo "install-browser: apt-get install chromium chromium-driver"
    # Bounded: a hung mirror must not hang CI forever.
    timeout 600 apt-get update -qq
    timeout 900 apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        chromium chromium-driver fonts-liberation >/dev/null
fi

if "$PYTHON" -c 'import selenium' >/dev/null 2>&1; then
    echo "install-browser: selenium already importable by $PYTHON"
else
    echo "install-browser: $PYTHON -m pip install '$SELENIUM_SPEC'"
    timeout 600 "$PYTHON" -m pip install --quiet "$SELENIUM_SPEC"
fi

/usr/bin/chromium --version
/usr/bin/chromedriver --version
"$PYTHON" -c 'import selenium; print("selenium", selenium.__version__)'
