#!/usr/bin/env bash
# Installs the Debian packages the test suite runs for real:
#   chromium + chromium-driver  tests/browser (headless Chromium through selenium)
#   nginx                       tests/deploy (the reverse proxy the docs configure)
#   postgresql                  tests that start their own PostgreSQL from /usr/lib/postgresql/*/bin
#   openssl                     tests/deploy makes a throwaway TLS certificate for nginx
#   gcc (+ python3-dev)         tests/deploy/test_compiled.py builds the opt-in mypyc build;
#                               python3-dev only when $PYTHON lacks its Python.h (a Debian python3)
#   nodejs + npm                tests/homeserver/test_js_sdk.py (matrix-js-sdk 36, which needs
#                               Node 20+; the test runs `npm ci` itself). Only when no `node` is
#                               on PATH: Debian 12's own nodejs is 18, too old (the test then
#                               fails under CI and says so); Node 20 comes from NodeSource there.
# and selenium into the Python that runs pytest ($PYTHON, else the active
# virtualenv's, else the repository's .venv, else the first python3 on PATH:
# never the system Python when a venv is there).
#
# Idempotent: each piece is installed only when it is missing, so a second run
# touches no network. Non-interactive, every network step bounded by `timeout`.
# Run it as root (apt-get):
#
#   bash .ci/install-system.sh            # or: PYTHON=.venv/bin/python bash ...
#
# The tests start nginx and PostgreSQL themselves, on 127.0.0.1 and free
# ports, in temporary directories. The Debian packages must therefore not
# leave their system services running (nginx on :80, PostgreSQL on :5432):
# while installing, a policy-rc.d refuses every service start, and any
# service already running from the packages is stopped afterwards.
#
# Never downloads a browser build of its own: chromium comes from Debian, and
# selenium is pointed at /usr/bin/chromium and /usr/bin/chromedriver.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
REPO="$(cd "$(dirname "$0")/.." && pwd)"
if [ -z "${PYTHON:-}" ]; then
    if [ -n "${VIRTUAL_ENV:-}" ]; then PYTHON="$VIRTUAL_ENV/bin/python"
    elif [ -x "$REPO/.venv/bin/python" ]; then PYTHON="$REPO/.venv/bin/python"
    else PYTHON="$(command -v python3)"; fi
fi
SELENIUM_SPEC="${SELENIUM_SPEC:-selenium>=4.20,<5}"

log() { echo "install-system: $*"; }

missing=()
{ [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; } || missing+=(chromium chromium-driver fonts-liberation)
[ -x /usr/sbin/nginx ] || missing+=(nginx)
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || missing+=(postgresql)
[ -x /usr/bin/openssl ] || missing+=(openssl)
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
command -v node >/dev/null 2>&1 || missing+=(nodejs npm)
"$PYTHON" -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
    || missing+=(python3-dev)

if [ "${#missing[@]}" -eq 0 ]; then
    log "chromium, chromium-driver, nginx, postgresql, openssl, gcc and Python headers already installed"
else
    if [ "$(id -u)" -ne 0 ]; then
        log "need root to apt-get install ${missing[*]}" >&2
        exit 1
    fi
    # No service may start while the packages install (restored afterwards).
    policy=/usr/sbin/policy-rc.d
    own_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        own_policy=1
    fi
    trap '[ "$own_policy" = 1 ] && rm -f "$policy"' EXIT
    log "apt-get install ${missing[*]}"
    # Bounded: a hung mirror must not hang CI forever.
    timeout 600 apt-get update -qq
    timeout 900 apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${missing[@]}" >/dev/null
fi

# Whatever started anyway (a machine without policy-rc.d, an older install):
# stop the packaged services so their ports are free. Only processes started
# from the packages' own configuration are touched.
if [ -f /run/nginx.pid ] && kill -0 "$(cat /run/nginx.pid)" 2>/dev/null; then
    log "stopping the packaged nginx service"
    timeout 30 /usr/sbin/nginx -s quit -c /etc/nginx/nginx.conf 2>/dev/null || kill "$(cat /run/nginx.pid)" 2>/dev/null || true
fi
if command -v pg_lsclusters >/dev/null 2>&1; then
    pg_lsclusters --no-header 2>/dev/null | while read -r version cluster _port status _rest; do
        if [ "$status" = online ]; then
            log "stopping the packaged PostgreSQL cluster $version/$cluster"
            timeout 60 pg_ctlcluster "$version" "$cluster" stop || true
        fi
    done
fi

if "$PYTHON" -c 'import selenium' >/dev/null 2>&1; then
    log "selenium already importable by $PYTHON"
else
    log "$PYTHON -m pip install '$SELENIUM_SPEC'"
    timeout 600 "$PYTHON" -m pip install --quiet "$SELENIUM_SPEC"
fi

/usr/bin/chromium --version
/usr/bin/chromedriver --version
/usr/sbin/nginx -v 2>&1
ls -d /usr/lib/postgresql/*/bin/postgres
echo "node $(node --version)"
"$PYTHON" -c 'import selenium; print("selenium", selenium.__version__)'
