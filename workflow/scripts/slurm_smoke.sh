#!/usr/bin/env bash
# The smoke workflow through a real SLURM: starts a one-node SLURM cluster on this machine
# (munge, slurmctld, slurmd), runs config/smoke.yaml (digits; three of its defenses) with
# the workflow profile workflow/profiles/slurm (GPU requests off: DGP_SLURM_GPUS=0), checks
# the same rows as the local smoke run (check_smoke.py) and stops the daemons it started, by
# PID, however it ends.
#
# Installs slurm-wlm and munge with apt-get when they are missing (needs root). The test
# cluster's state, spool, logs and pid files live in results/slurm-smoke/cluster/; its
# slurm.conf goes to /etc/slurm/slurm.conf (the plugin clears SLURM_* variables inside jobs,
# so srun there only finds the default path) and is removed at the end. A slurm.conf that
# this script did not write is never touched: the script stops instead. Each run starts
# from a clean cluster and clean outputs, so it can be re-run any time.
# Usage: bash workflow/scripts/slurm_smoke.sh [extra snakemake arguments, e.g. --groups ...]
# Environment: SLURM_SMOKE_TIMEOUT (seconds for the workflow, default 2400).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
workdir="$repo/results/slurm-smoke"
cluster="$workdir/cluster"
conf=/etc/slurm/slurm.conf
marker="# Written by workflow/scripts/slurm_smoke.sh"
export PATH="$repo/.venv/bin:$PATH"
export DGP_SLURM_GPUS=0  # this machine has no GPU: no --gpus in any sbatch call
timeout_s="${SLURM_SMOKE_TIMEOUT:-2400}"
started=$(date +%s)
log() { echo "slurm-smoke: $*"; }

# --- install -----------------------------------------------------------------------------
missing=()
for tool in munged slurmctld slurmd sbatch squeue sinfo scancel; do
  command -v "$tool" > /dev/null || [ -x "/usr/sbin/$tool" ] || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "slurm-smoke: missing ${missing[*]}; installing slurm-wlm and munge needs root." >&2
    echo "  Run as root, or: sudo apt-get install -y slurm-wlm munge" >&2
    exit 1
  fi
  log "installing slurm-wlm and munge (missing: ${missing[*]})"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge > /dev/null
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "slurm-smoke: starting the SLURM daemons needs root (SlurmUser=root)." >&2
  exit 1
fi
export PATH="$PATH:/usr/sbin"

# --- stop: only what this script started, by PID ------------------------------------------
# A pid file lists one daemon this script started; a PID is signalled only while its process
# still has the expected name (never a recycled PID).
pid_alive() {  # pid_alive PIDFILE NAME -> prints the PID if that process is alive
  local pid
  [ -s "$1" ] || return 1
  pid=$(tr -dc 0-9 < "$1")
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2> /dev/null)" = "$2" ] && echo "$pid"
}
stop_daemon() {  # stop_daemon PIDFILE NAME
  local pid i
  if pid=$(pid_alive "$1" "$2"); then
    kill "$pid" 2> /dev/null || true
    for i in $(seq 50); do
      [ -d "/proc/$pid" ] || break
      sleep 0.2
    done
    [ -d "/proc/$pid" ] && kill -9 "$pid" 2> /dev/null || true
    log "stopped $2 (pid $pid)"
  fi
  rm -f "$1"
}
ours() { [ -f "$conf" ] && [ "$(head -n 1 "$conf")" = "$marker" ]; }
stop_cluster() {
  # Cancel jobs first: their processes outlive slurmd otherwise.
  if pid_alive "$cluster/slurmctld.pid" slurmctld > /dev/null; then
    scancel --quiet --user root 2> /dev/null || true
    for _ in $(seq 30); do
      [ -z "$(squeue -h -t running,completing -o %i 2> /dev/null)" ] && break
      sleep 0.5
    done
  fi
  stop_daemon "$cluster/slurmd.pid" slurmd
  stop_daemon "$cluster/slurmctld.pid" slurmctld
  stop_daemon "$cluster/munged.pid" munged
  if ours; then rm -f "$conf"; fi
}
workflow_pid=
on_exit() {
  local status=$? i
  if [ -n "$workflow_pid" ] && [ -d "/proc/$workflow_pid" ]; then
    # Interrupted mid-run: cancel the jobs, ask Snakemake (timeout passes the signal on) to
    # stop, and after 20 s kill it and timeout, by PID.
    scancel --quiet --user root 2> /dev/null || true
    kill "$workflow_pid" 2> /dev/null || true
    for i in $(seq 40); do
      [ -d "/proc/$workflow_pid" ] || break
      sleep 0.5
    done
    if [ -d "/proc/$workflow_pid" ]; then
      kill -9 $(pgrep -P "$workflow_pid") "$workflow_pid" 2> /dev/null || true
    fi
  fi
  stop_cluster
  log "finished with status $status after $(($(date +%s) - started)) s"
  exit "$status"
}

# A previous run killed with SIGKILL may have left its daemons: stop them, then start clean.
mkdir -p "$cluster"
stop_cluster
if pgrep -x slurmctld > /dev/null || pgrep -x slurmd > /dev/null; then
  echo "slurm-smoke: a SLURM daemon not started by this script is running; not touching it." >&2
  pgrep -a -x 'slurmctld|slurmd' >&2 || true
  exit 1
fi
if [ -e "$conf" ] && ! ours; then
  echo "slurm-smoke: $conf exists and was not written by this script; not touching it." >&2
  exit 1
fi
trap on_exit EXIT
trap 'exit 130' INT TERM

# --- configure: one node with this machine's cores and most of its free memory -----------
cpus=$(nproc)
mem_mb=$(awk '/MemAvailable/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
need_mb=8000  # the largest mem_mb in workflow/profiles/slurm (train)
if [ "$mem_mb" -lt "$need_mb" ]; then
  echo "slurm-smoke: $mem_mb MB available, the profile's train jobs ask for $need_mb MB." >&2
  exit 1
fi
rm -rf "$cluster/state" "$cluster/spool" "$cluster"/*.log
mkdir -p "$cluster/state" "$cluster/spool"
mkdir -p "$(dirname "$conf")"
cat > "$conf" << CONF
$marker
# A one-node test cluster without accounting; removed when the script ends.
ClusterName=dgpsmoke
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
MailProg=/bin/true
MinJobAge=300
StateSaveLocation=$cluster/state
SlurmdSpoolDir=$cluster/spool
SlurmctldPidFile=$cluster/slurmctld.pid
SlurmdPidFile=$cluster/slurmd.pid
SlurmctldLogFile=$cluster/slurmctld.log
SlurmdLogFile=$cluster/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF

# --- start ---------------------------------------------------------------------------------
# munged: reuse one that is already running (and leave it running); else start our own.
if munge -n 2> /dev/null | unmunge > /dev/null 2>&1; then
  log "munged already running; using it"
else
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
  runuser -u munge -- munged --pid-file=/run/munge/munged.pid
  cp /run/munge/munged.pid "$cluster/munged.pid"
  munge -n | unmunge > /dev/null
  log "started munged (pid $(cat "$cluster/munged.pid"))"
fi
slurmctld
slurmd -N localhost
for i in $(seq 60); do
  state=$(sinfo -h -N -o %T 2> /dev/null || true)
  [ "$state" = idle ] && break
  if [ "$i" -eq 60 ]; then
    echo "slurm-smoke: node not idle after 30 s (state: ${state:-none})" >&2
    tail -n 20 "$cluster/slurmctld.log" "$cluster/slurmd.log" >&2 || true
    exit 1
  fi
  sleep 0.5
done
log "slurmctld (pid $(cat "$cluster/slurmctld.pid")), slurmd (pid $(cat "$cluster/slurmd.pid")) up;" \
  "node idle: $cpus CPUs, $mem_mb MB ($(($(date +%s) - started)) s so far)"

# --- run the smoke workflow through SLURM ------------------------------------------------
rm -rf "$workdir/results" "$workdir/logs" "$workdir/.snakemake"
# The executor is under test, not the defenses (the local smoke run covers every one): three
# defenses and one attack keep every rule, a trained-model attack and a noise draw in a
# 21-job grid (with smoke.yaml's FedAvg and aggregated protocols).
grid="$workdir/slurm-grid.yaml"
cat > "$grid" <<YAML
defenses:
  - {name: none}
  - {name: dgp, ratios: [0.8]}
  - {name: dp_gaussian, ratios: [0.001]}
attacks:
  - {name: idlg_adaptive, params: {iterations: 10}}
YAML
run_start=$(date +%s)
# In the background, so that a signal reaches this script's trap at once.
timeout -k 60 "$timeout_s" snakemake --snakefile "$repo/Snakefile" --directory "$workdir" \
  --workflow-profile "$repo/workflow/profiles/slurm" \
  --configfile "$repo/config/smoke.yaml" "$grid" \
  --slurm-init-seconds-before-status-checks 5 --seconds-between-status-checks 5 \
  --slurm-keep-successful-logs "$@" &
workflow_pid=$!
status=0
wait "$workflow_pid" || status=$?
workflow_pid=
if [ "$status" -ne 0 ]; then
  echo "slurm-smoke: the workflow failed or timed out; last lines of the daemons' logs:" >&2
  tail -n 20 "$cluster/slurmctld.log" "$cluster/slurmd.log" >&2 || true
  exit 1
fi
submitted=$(find "$workdir/.snakemake/slurm_logs" -name '*.log' 2> /dev/null | wc -l)
log "workflow done in $(($(date +%s) - run_start)) s; $submitted jobs went through sbatch"
[ "$submitted" -gt 0 ] || { echo "slurm-smoke: no job went through SLURM" >&2; exit 1; }
python "$repo/workflow/scripts/check_smoke.py" "$workdir" "$repo/config/smoke.yaml" "$grid"
