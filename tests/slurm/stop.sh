#!/usr/bin/env bash
# Stop the single-node SLURM cluster started by tests/slurm/start.sh (adapted from
# ../shared/tools/slurm/stop-slurm.sh):
#   slurmd, slurmctld, slurmdbd, mariadbd (private instance), munged.
#   --purge       also delete Slurm state (queued/finished jobs; job ids restart at 1),
#                 the accounting database and the logs
#   --keep-munge  leave munged running
# Only the processes named in the pid files are signalled (never by name). Without --purge, running
# jobs are left alone (their slurmstepd keeps them alive; slurmd picks them up again on restart);
# with --purge all jobs are scancel'ed first.
set -uo pipefail
D=${LOCAL_SLURM_DIR:-/tmp/local-slurm}
PURGE=0; KEEP_MUNGE=0
for a in "$@"; do case "$a" in --purge) PURGE=1 ;; --keep-munge) KEEP_MUNGE=1 ;;
  *) echo "usage: $0 [--purge] [--keep-munge]" >&2; exit 2 ;; esac; done

PIDS=()
term() {  # term <pidfile> <comm>: SIGTERM the process named in the pid file if it really is <comm>
  local pid; pid=$(cat "$1" 2>/dev/null) || return 0
  if [ -n "$pid" ] && [ -d "/proc/$pid" ] && [ "$(cat /proc/$pid/comm 2>/dev/null)" = "$2" ]; then
    echo "stopping $2 (pid $pid)"; kill "$pid"; PIDS+=("$pid:$2")
  fi
  rm -f "$1"
}
wait_all() {  # wait for the signalled processes, SIGKILL after 15 s
  local e pid
  for e in "${PIDS[@]}"; do pid=${e%%:*}
    for _ in $(seq 150); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
    if [ -d "/proc/$pid" ]; then echo "  ${e#*:} still alive after 15 s, SIGKILL"; kill -9 "$pid"; fi
  done
  PIDS=()
}
if [ "$PURGE" = 1 ] && squeue -h >/dev/null 2>&1; then   # no job may outlive a purged controller
  JOBS=$(squeue -h -o %A)
  if [ -n "$JOBS" ]; then
    echo "cancelling jobs: $(echo $JOBS)"; scancel $JOBS
    for _ in $(seq 150); do [ -z "$(squeue -h -o %A)" ] && break; sleep 0.1; done
  fi
fi
term "$D/run/slurmd.pid" slurmd
term "$D/run/slurmctld.pid" slurmctld
wait_all
term "$D/run/slurmdbd.pid" slurmdbd     # after slurmctld, so it can flush its accounting messages
wait_all
term "$D/mysql/mariadbd.pid" mariadbd
[ "$KEEP_MUNGE" = 1 ] || term /run/munge/munged.pid munged
wait_all
if [ "$PURGE" = 1 ]; then
  echo "purging $D/state $D/mysql $D/log"
  rm -rf "$D/state" "$D/mysql" "$D/log"
fi
echo "stopped. start again with: $(dirname "$0")/start.sh"
