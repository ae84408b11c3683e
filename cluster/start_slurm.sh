#!/bin/bash
# Starts a one-node SLURM cluster on this Debian machine, as root: Debian's slurm-wlm and munge, the node's
# cores and memory, no cgroups (proctrack/linuxproc, task/none), one partition "debug". For trying
# cluster/seeds.sbatch; cluster/check_requeue.sh uses it. Idempotent: a second call restarts the daemons.
set -euo pipefail
[ "$(id -u)" -eq 0 ] || { echo "error: run as root (it installs packages and starts daemons)" >&2; exit 1; }
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null
fi
host=$(hostname -s)
cpus=$(nproc)
memory_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /etc/munge /run/munge
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=local
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=/var/log/slurm/jobcomp.log
ReturnToService=2
MinJobAge=3600
KillWait=30
NodeName=$host CPUs=$cpus RealMemory=$memory_mb State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
[ -s /etc/munge/munge.key ] || { dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; }
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
chmod 400 /etc/munge/munge.key
pkill -x slurmctld || true
pkill -x slurmd || true
pkill -x munged || true
sleep 1
runuser -u munge -- /usr/sbin/munged
slurmctld
slurmd
for _ in $(seq 30); do
  if sinfo -h -o '%T' 2>/dev/null | grep -q idle; then
    echo "SLURM is up: one node ($host, $cpus CPUs, $memory_mb MB), partition debug"
    exit 0
  fi
  sleep 1
done
echo "error: the SLURM node did not come up; see /var/log/slurm/slurmctld.log and slurmd.log" >&2
exit 1
