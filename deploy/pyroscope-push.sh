#!/usr/bin/env bash
# Pushes kvmprof-agent's CPU profile of every VM to Grafana Pyroscope's ingest API
# (POST /ingest?name=APP{host=H}&from=T0&until=T1&format=pprof, the body a gzipped
# profile.proto), every INTERVAL seconds. Off by default: run it under a systemd timer or a
# loop on the hypervisor (with --once for a timer). Each sample's labels (domain, uuid, vcpu or
# thread, execution_mode) come along, so Pyroscope can select a VM.
# Usage: pyroscope-push.sh --pyroscope URL [--agent URL] [--interval SECONDS] [--name APP] [--once]
set -euo pipefail
agent=http://127.0.0.1:9477
pyroscope=
interval=15
name=kvmprof.cpu
once=false
while [ $# -gt 0 ]; do
  case "$1" in
    --agent) agent=$2; shift 2 ;;
    --pyroscope) pyroscope=$2; shift 2 ;;
    --interval) interval=$2; shift 2 ;;
    --name) name=$2; shift 2 ;;
    --once) once=true; shift ;;
    *) echo "pyroscope-push: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
if [ -z "$pyroscope" ]; then echo "pyroscope-push: --pyroscope URL is required" >&2; exit 2; fi
case "$interval" in ''|*[!0-9]*) echo "pyroscope-push: --interval must be whole seconds" >&2; exit 2 ;; esac
host=$(hostname)
profile=$(mktemp)
trap 'rm -f "$profile"' EXIT

push() {
  local until from
  until=$(date +%s)
  from=$((until - interval))
  curl -sfS -o "$profile" "$agent/debug/pprof/profile?seconds=$interval"
  curl -sfS -X POST --data-binary @"$profile" -H 'Content-Type: application/octet-stream' \
    "$pyroscope/ingest?name=$name%7Bhost%3D$host%7D&from=$from&until=$until&format=pprof&spyName=kvmprof"
}

if $once; then push; exit; fi
while true; do
  push || echo "pyroscope-push: this push failed; the next one comes in $interval s" >&2
  sleep "$interval"
done
