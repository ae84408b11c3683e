#!/bin/bash
# Opt-in check of the sweep recipe (not part of the test suite; run as root on a Debian machine):
#
#     bash cluster/check_sweep.sh DATA_DIR        # DATA_DIR: the four MNIST files
#
# Starts a one-node SLURM (cluster/start_slurm.sh), writes a two-line sweep file, submits cluster/sweep.sbatch for
# both lines with one CPU per task (so both run side by side on a 2-core machine) and a 3-minute time limit with
# SIGUSR1 a minute before it, so that the limit falls mid-run; trains the same two runs without SLURM beside them;
# and passes if both tasks end COMPLETED after at least one requeue each, each requeued by itself (its own log says
# so, and no task was stopped by another's requeue), with metrics.csv (all but its seconds column) and
# evaluation.json (all but its seconds) equal to the runs without SLURM. Then vae-report shows a row
# per line of the sweep.
set -euo pipefail
data_dir=${1:?usage: bash cluster/check_sweep.sh DATA_DIR (a directory holding the four MNIST files)}
data_dir=$(cd "$data_dir" && pwd)
cd "$(dirname "$0")/.."
bash cluster/start_slurm.sh
work=$(mktemp -d /tmp/vae-sweep-check.XXXXXX)
common=(--epochs=40 --updates_per_epoch=100 --eval_k=10)
printf '%s\n' '--beta=2 --seed=0' '--latent_dim=3 --seed=0' > "$work/sweep.txt"
threads=(TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 OMP_NUM_THREADS=1)

job=$(DATA_DIR=$data_dir RUNS_DIR=$work/slurm sbatch --parsable --array=1-2 --cpus-per-task=1 --time=3 \
      --signal=B:USR1@60 --output="$work/slurm-%A_%a.out" cluster/sweep.sbatch "$work/sweep.txt" "${common[@]}")
job=${job%%;*}
echo "submitted job $job (tasks 1 and 2, one per line of $work/sweep.txt); the same runs train without SLURM meanwhile"
for n in 1 2; do
  read -r -a line_flags <<< "$(sed -n "${n}p" "$work/sweep.txt")"
  env "${threads[@]}" .venv/bin/python run.py --data_dir="$data_dir" --do_viz=False --output_dir="$work/plain/line$n" \
      "${common[@]}" "${line_flags[@]}" > "$work/plain$n.log" 2>&1 &
done
wait

ok=1
for n in 1 2; do
  state=PENDING
  for _ in $(seq 1800); do
    info=$(scontrol show job "${job}_$n" 2>/dev/null || true)
    state=$(sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' <<< "$info" | head -1)
    case "$state" in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|PREEMPTED|BOOT_FAIL|DEADLINE) break ;; esac
    sleep 2
  done
  restarts=$(sed -n 's/.*Restarts=\([0-9]*\).*/\1/p' <<< "$info" | head -1)
  echo "task ${job}_$n ($(sed -n "${n}p" "$work/sweep.txt")): $state after $restarts requeue(s)"
  grep -E 'error:|requeue|resuming|log-likelihood' "$work/slurm-${job}_$n.out" | sed 's/^/    /' || true
  grep -q "task $n: time limit near, requeued" "$work/slurm-${job}_$n.out" || { echo "    not requeued by itself"; ok=0; }
  # SLURM writes "CANCELLED ... DUE TO JOB REQUEUE" into a task's log when a requeue ends its batch script: after
  # the task's own requeue line when it requeued itself (the script may still be exiting), without one when
  # another task's requeue stopped it.
  if ! awk -v own="task $n: time limit near, requeued" 'index($0, own) {mine++}
         /DUE TO JOB REQUEUE/ {if (mine > 0) mine--; else other = 1} END {exit other}' "$work/slurm-${job}_$n.out"; then
    echo "    stopped by another task's requeue"; ok=0
  fi
  .venv/bin/python - "$work/slurm/line$n" "$work/plain/line$n" "$state" "${restarts:-0}" <<'PY' || ok=0
import csv, json, sys
slurm, plain, state, restarts = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4] or 0)
def metrics(d):
  return [{k: v for k, v in row.items() if k != 'seconds'} for row in csv.DictReader(open(f'{d}/metrics.csv'))]
def evaluation(d):
  return {k: v for k, v in json.load(open(f'{d}/evaluation.json')).items() if k != 'seconds'}
same_metrics, same_evaluation = metrics(slurm) == metrics(plain), evaluation(slurm) == evaluation(plain)
print(f'    metrics.csv equal to the run without SLURM: {same_metrics} ({len(metrics(slurm))} epochs); '
      f'evaluation.json equal: {same_evaluation} (test ELBO {evaluation(slurm)["test_elbo"]:.4f})')
sys.exit(0 if state == 'COMPLETED' and restarts >= 1 and same_metrics and same_evaluation else 1)
PY
done
echo "--- the job completion log:"
grep "JobId=${job}[_ ]" /var/log/slurm/jobcomp.log | sed 's/ *\(JobName\|UserId\|GroupId\|Partition\|NodeList\|NodeCnt\|ProcCnt\|WorkDir\|ReservationName\|Tres\|Account\|QOS\|WcKey\|Cluster\|SubmitTime\|EligibleTime\|DerivedExitCode\|ArrayJobId\|ArrayTaskId\)=[^ ]*//g' || true
echo "--- vae-report $work/slurm/*:"
.venv/bin/python -m vae.commands.report "$work"/slurm/*
[ "$ok" -eq 1 ] && echo PASS || { echo FAIL; exit 1; }
