# Stage bookkeeping for scripts/test.sh (sourced). Each stage runs whatever happened before it, and its exit status
# and the result files it should leave are recorded in <results>/stages.tsv, so that scripts/summarize_tests.py
# counts a stage that failed, or left no results, as a failure in the closing line.

stages_file=""
stage_status=0

# stages_begin RESULTS_DIR: starts a fresh record in RESULTS_DIR.
stages_begin() {
  stages_file="$1/stages.tsv"
  : > "$stages_file"
}

# run_stage NAME RESULT_GLOB EXPECTED_FILES COMMAND...: runs COMMAND without stopping the calling script when it
# fails (also under set -e), leaves its exit status in stage_status and records NAME, that status, the glob of the
# result files it writes in the results folder ("" for none) and how many of them a complete run writes.
run_stage() {
  local name=$1 results=$2 expected=$3 errexit=0
  shift 3
  [[ $- == *e* ]] && errexit=1
  echo "== $name"
  set +e
  "$@"
  stage_status=$?
  if [ "$errexit" -eq 1 ]; then set -e; fi
  [ "$stage_status" -eq 0 ] || echo "== $name failed (exit status $stage_status)"
  printf '%s\t%s\t%s\t%s\n' "$name" "$stage_status" "$results" "$expected" >> "$stages_file"
  return 0
}
