# Sourced by the job scripts here: `requeue_when_stopped COMMAND...` runs COMMAND (a run.py command line) in the
# background, passes SIGUSR1 on to it, waits until it has ended, and puts the task back in the queue when it stopped
# for the time limit (exit 128 + SIGUSR1: it saved at its step), so that the same command, started again,
# continues from the checkpoint. Returns the run's exit status.
requeue_when_stopped() {
  "$@" &
  local run=$! status task
  trap 'kill -USR1 "$run"' USR1
  # `wait` returns early when a trapped signal arrives; wait again until run.py itself has ended.
  wait "$run"; status=$?
  while kill -0 "$run" 2>/dev/null; do wait "$run"; status=$?; done
  if [ "$status" -eq 138 ]; then  # 128 + SIGUSR1: saved at its step because the time limit is near
    echo "task $SLURM_ARRAY_TASK_ID: time limit near, requeued to resume at the saved step"
    # This task alone: in an array, the last task's SLURM_JOB_ID is the array's own id, and requeueing that id
    # requeues (and stops) every task of the array.
    task=$SLURM_JOB_ID
    if [ -n "${SLURM_ARRAY_JOB_ID:-}" ]; then task=${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}; fi
    scontrol requeue "$task"
  fi
  return "$status"
}
