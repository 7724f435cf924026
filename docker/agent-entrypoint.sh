#!/bin/sh
# Entrypoint of this project's agent containers (docker/docker-compose.yml: agent-gpu, agent-cpu), mounted read-only
# into ClearML's clearml/clearml-agent-services image. Its arguments are the `clearml-agent daemon` options, e.g.
#   agent-entrypoint.sh --queue gpu --create-queue --docker brain-tumor-clearml:0.2.0 --gpus 0 --foreground
#
# Why not the image's own entrypoint: it always adds --cpu-only (it serves the `services` queue), so it cannot run a
# GPU worker. And why not `clearml-agent daemon` directly: without CLEARML_FILES_HOST the agent and every task it
# starts resolve the files server from the API address (http://apiserver:8081), where nothing listens. The files
# server's address is also recorded in every dataset, model and artifact link, so it must be one that task
# containers AND users' machines reach: http://$CLEARML_HOST_IP:8081. This script derives it (and the web UI's
# address), the same way the services image does, but never asks the internet for the host's address.
set -eu

prog=agent-entrypoint
host_ip=${CLEARML_HOST_IP:-}

# localhost, inside a container or on a user's machine, is that machine, not the server host.
case "$host_ip" in
    localhost | 127.* | ::1 | 0.0.0.0)
        echo "$prog: CLEARML_HOST_IP=$host_ip names the container itself, not the server host: set CLEARML_HOST_IP" \
            "to the host's IP or DNS name as other machines and containers reach it; clearml-agent not started" >&2
        exit 1
        ;;
    *) ;;
esac
# Nor are the compose service names, which users' machines cannot resolve.
case "${CLEARML_FILES_HOST:-}" in
    *://localhost* | *://127.* | *://\[::1\]* | *://0.0.0.0* | *://apiserver* | *://fileserver*)
        echo "$prog: CLEARML_FILES_HOST=$CLEARML_FILES_HOST is not an address that both task containers and other" \
            "machines reach: use the server host's IP or DNS name, or leave it empty to derive it from" \
            "CLEARML_HOST_IP; clearml-agent not started" >&2
        exit 1
        ;;
    *) ;;
esac

if [ -z "${CLEARML_FILES_HOST:-}" ]; then
    if [ -z "$host_ip" ]; then
        echo "$prog: CLEARML_HOST_IP is not set: set it to the server host's IP or DNS name as other machines and" \
            "containers reach it (the files server is then http://CLEARML_HOST_IP:8081), or set CLEARML_FILES_HOST;" \
            "clearml-agent not started" >&2
        exit 1
    fi
    CLEARML_FILES_HOST="http://$host_ip:8081"
fi
if [ -z "${CLEARML_WEB_HOST:-}" ] && [ -n "$host_ip" ]; then
    CLEARML_WEB_HOST="http://$host_ip:8080"
fi
CLEARML_API_HOST=${CLEARML_API_HOST:-http://apiserver:8008}
export CLEARML_FILES_HOST CLEARML_API_HOST
if [ -n "${CLEARML_WEB_HOST:-}" ]; then
    export CLEARML_WEB_HOST
fi

if [ -z "${CLEARML_API_ACCESS_KEY:-}" ] || [ -z "${CLEARML_API_SECRET_KEY:-}" ]; then
    echo "$prog: CLEARML_API_ACCESS_KEY / CLEARML_API_SECRET_KEY are empty: docker-compose.yml fills them from" \
        "CLEARML_AGENT_ACCESS_KEY / CLEARML_AGENT_SECRET_KEY (docker/README.md); clearml-agent not started" >&2
    exit 1
fi

echo "$prog: api $CLEARML_API_HOST, files $CLEARML_FILES_HOST, web ${CLEARML_WEB_HOST:-(not set)}" >&2

# Wait for the API server, as ClearML's compose file does for its services agent (skipped where curl is missing).
if command -v curl >/dev/null 2>&1; then
    if ! curl --silent --show-error --output /dev/null --retry 10 --retry-delay 10 --retry-connrefused \
        "${CLEARML_API_HOST%/}/debug.ping"; then
        echo "$prog: the API server ${CLEARML_API_HOST%/} did not answer; clearml-agent not started" >&2
        exit 1
    fi
fi

exec clearml-agent daemon "$@"
