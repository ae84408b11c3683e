#!/bin/bash
# Opt-in check of the SLURM recipe (not part of the test suite; run as root on a Debian machine):
#
#     bash cluster/check_requeue.sh DATA_DIR        # DATA_DIR: the four MNIST files
#
# Starts a one-node SLURM (cluster/start_slurm.sh), submits cluster/seeds.sbatch made small (one task, 90 epochs
# of 100 steps, a 3-minute time limit with SIGUSR1 a minute before it, so the limit falls mid-run), trains the
# same run without SLURM beside it, and passes if the task ends COMPLETED after at least one requeue with
# metrics.csv (all but its seconds column) and evaluation.json (all but its seconds) equal to the run without
# SLURM. Took about 6 minutes on a 2-core Intel Xeon (AVX-512), the run without SLURM training beside it.
set -euo pipefail
data_dir=${1:?usage: bash cluster/check_requeue.sh DATA_DIR (a directory holding the four MNIST files)}
data_dir=$(cd "$data_dir" && pwd)
cd "$(dirname "$0")/.."
bash cluster/start_slurm.sh
work=$(mktemp -d /tmp/vae-slurm-check.XXXXXX)
args=(--epochs=90 --updates_per_epoch=100 --eval_k=10)
threads=(TF_NUM_INTRAOP_THREADS=2 TF_NUM_INTEROP_THREADS=1 OMP_NUM_THREADS=2)

job=$(DATA_DIR=$data_dir RUNS_DIR=$work/slurm sbatch --parsable --array=0 --time=3 --signal=B:USR1@60 \
      --output="$work/slurm-%A_%a.out" cluster/seeds.sbatch "${args[@]}")
job=${job%%;*}
echo "submitted job ${job}_0; the same run without SLURM trains meanwhile in $work/plain"
env "${threads[@]}" .venv/bin/python run.py --data_dir="$data_dir" --do_viz=False --seed=0 \
    --output_dir="$work/plain/seed0" "${args[@]}" > "$work/plain.log" 2>&1

state=PENDING
for _ in $(seq 1800); do
  info=$(scontrol show job "${job}_0" 2>/dev/null || true)
  state=$(sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' <<< "$info" | head -1)
  case "$state" in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|PREEMPTED|BOOT_FAIL|DEADLINE) break ;; esac
  sleep 2
done
restarts=$(sed -n 's/.*Restarts=\([0-9]*\).*/\1/p' <<< "$info" | head -1)
echo "job ${job}_0: $state after $restarts requeue(s)"
echo "--- its output ($work/slurm-${job}_0.out):"
grep -E 'error:|requeued|resuming|test elbo -|log-likelihood' "$work/slurm-${job}_0.out" | grep -v '^  test elbo' || true
echo "--- the job completion log:"
grep "JobId=${job}[_ ]" /var/log/slurm/jobcomp.log | sed 's/ *\(JobName\|UserId\|GroupId\|Partition\|NodeList\|NodeCnt\|ProcCnt\|WorkDir\|ReservationName\|Tres\|Account\|QOS\|WcKey\|Cluster\|SubmitTime\|EligibleTime\|DerivedExitCode\|ArrayJobId\|ArrayTaskId\)=[^ ]*//g' || true

.venv/bin/python - "$work/slurm/seed0" "$work/plain/seed0" "$state" "$restarts" <<'PY'
import csv, json, sys
slurm, plain, state, restarts = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4] or 0)
def metrics(d):
  return [{k: v for k, v in row.items() if k != 'seconds'} for row in csv.DictReader(open(f'{d}/metrics.csv'))]
def evaluation(d):
  return {k: v for k, v in json.load(open(f'{d}/evaluation.json')).items() if k != 'seconds'}
same_metrics = metrics(slurm) == metrics(plain)
same_evaluation = evaluation(slurm) == evaluation(plain)
print(f'metrics.csv equal to the run without SLURM: {same_metrics} ({len(metrics(slurm))} epochs); '
      f'evaluation.json equal: {same_evaluation} (test ELBO {evaluation(slurm)["test_elbo"]:.4f}, '
      f'log p(x) {evaluation(slurm)["test_log_likelihood"]:.4f})')
ok = state == 'COMPLETED' and restarts >= 1 and same_metrics and same_evaluation
print('PASS' if ok else 'FAIL')
sys.exit(0 if ok else 1)
PY
