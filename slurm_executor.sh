#!/bin/bash
# Submit a job script to Slurm with a cluster header, or run it here, and keep a record of what ran.
#
#   bash slurm_executor.sh HEADER job_scripts/nlp/pretrain/ebt_s1.sh   # header = job_scripts/slurm_headers/HEADER.slurm
#   bash slurm_executor.sh job_scripts/nlp/pretrain/ebt_s1.sh          # no header: run with bash on this machine
#
# Every call appends the date, the header and the full text that ran to
# logs/job_scripts/executed_slurm_script_contents.log. Extra arguments after the job script are passed on.
set -euo pipefail
cd "$(dirname "$0")"
HEADERS_DIR="job_scripts/slurm_headers"
RECORD="logs/job_scripts/executed_slurm_script_contents.log"

die() { echo "slurm_executor.sh: error: $*" >&2; exit 2; }
headers() { ls "$HEADERS_DIR" 2>/dev/null | sed -n 's/\.slurm$//p' | tr '\n' ' '; }

if [ $# -lt 1 ]; then
    die "usage: bash slurm_executor.sh [HEADER] JOB_SCRIPT [flags...]; headers: $(headers)"
fi
if [ -f "$1" ]; then
    HEADER="none"; JOB_SCRIPT="$1"; shift
else
    [ $# -ge 2 ] || die "no such job script: $1 (usage: bash slurm_executor.sh [HEADER] JOB_SCRIPT)"
    HEADER="$1"; JOB_SCRIPT="$2"; shift 2
    [ -f "$HEADERS_DIR/$HEADER.slurm" ] || die "unknown header '$HEADER'; choose one of: $(headers)(files in $HEADERS_DIR/)"
    [ -f "$JOB_SCRIPT" ] || die "no such job script: $JOB_SCRIPT"
fi
[ -n "${CONDA_PREFIX:-}${VIRTUAL_ENV:-}" ] || die "no active environment: activate the project's conda env or venv first"

mkdir -p "$(dirname "$RECORD")" logs/slurm
record() {  # method, text
    {
        echo "=================================================================="
        echo "date: $(date '+%Y-%m-%d %H:%M:%S')"
        echo "job script: $JOB_SCRIPT"
        echo "header: $HEADER"
        echo "method: $1"
        echo "------------------------------------------------------------------"
        printf '%s\n' "$2"
    } >> "$RECORD"
}

if [ "$HEADER" = "none" ]; then
    record "bash" "$(cat "$JOB_SCRIPT")"
    exec bash "$JOB_SCRIPT" "$@"
fi

command -v sbatch > /dev/null || die "sbatch is not on the PATH: submit from a Slurm login node, or drop the header to run here"
COMBINED=$(mktemp job_scripts/temp_script_XXXXXX.slurm)
trap 'rm -f "$COMBINED"' EXIT
{ cat "$HEADERS_DIR/$HEADER.slurm"; echo; grep -v '^#!' "$JOB_SCRIPT"; } > "$COMBINED"
OUTPUT=$(sbatch "$COMBINED" "$@")
record "sbatch" "$(cat "$COMBINED")"
echo "$OUTPUT"
