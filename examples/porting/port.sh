#!/bin/sh
# Port a Synapse servlet module to synwsgi by search-and-replace: module paths only.
#   sh examples/porting/port.sh examples/porting/synapse_notes.py > examples/porting/notes.py
# The last line points `synapse.server` (the HomeServer type) at the application's own object.
exec sed -E \
    -e 's/synapse\.(api|config)\.ratelimiting/synwsgi.ratelimiting/g' \
    -e 's/synapse\.api\.errors/synwsgi.errors/g' \
    -e 's/synapse\.api\.auth/synwsgi.auth/g' \
    -e 's/synapse\.http\.servlet/synwsgi.servlet/g' \
    -e 's/synapse\.http\.server/synwsgi/g' \
    -e 's/synapse\.http\.site/synwsgi.request/g' \
    -e 's/synapse\.rest\.client\._base/synwsgi.rest/g' \
    -e 's/synapse\.rest\.client\.transactions/synwsgi.transactions/g' \
    -e 's/synapse\.util\.cancellation/synwsgi.cancellation/g' \
    -e 's/synapse\.types/synwsgi.types/g' \
    -e 's/synapse\.server/examples.porting.homeserver/g' \
    "$@"
