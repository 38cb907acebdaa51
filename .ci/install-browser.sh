#!/usr/bin/env bash
# Kept for the commands and messages that still name it: the browser now comes
# with everything else the tests run for real (nginx, PostgreSQL), from
# .ci/install-system.sh.
set -euo pipefail
exec bash "$(dirname "$0")/install-system.sh" "$@"
