#!/usr/bin/env bash
# Submit the comparison of this checkout to SLURM: a job array of N workers, each training and
# evaluating its slice of the arms in a clone of its own and pushing the runs to the DVC remote,
# then an assembly that starts once every worker succeeded and writes the report here, from the
# run-cache, training nothing (docs/remote-and-prs.md).
#
# Usage, from the checkout whose comparison is run (committed, its default DVC remote set):
#   cluster/slurm/submit.sh N [sbatch options for both jobs, e.g. --partition=cpu --time=4:00:00]
# Environment (exported to the jobs):
#   DEFECTSEG_REPO     the git repository the workers clone (default: this checkout)
#   DEFECTSEG_REMOTE   the workers' default DVC remote URL (default: this checkout's default remote;
#                      its credentials must reach the workers through their own DVC config)
#   DEFECTSEG_VENV     the Python environment with defectseg and dvc (default: this checkout's .venv)
#   DEFECTSEG_SCRATCH  where the workers' clones go (default: $TMPDIR or /tmp)
set -euo pipefail
workers=${1:?usage: cluster/slurm/submit.sh N [sbatch options]}
shift
here=$(cd "$(dirname "$0")" && pwd)
cd "$(git rev-parse --show-toplevel)"
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
    echo "error: $(pwd) has uncommitted changes: the workers clone commits, so commit the comparison first" >&2
    exit 1
fi
export DEFECTSEG_REPO=${DEFECTSEG_REPO:-$(pwd)}
export DEFECTSEG_COMMIT=$(git rev-parse HEAD)
export DEFECTSEG_VENV=${DEFECTSEG_VENV:-$(pwd)/.venv}
if [ -z "${DEFECTSEG_REMOTE:-}" ] && remote=$("$DEFECTSEG_VENV/bin/dvc" remote default 2>/dev/null) && [ -n "$remote" ]; then
    DEFECTSEG_REMOTE=$("$DEFECTSEG_VENV/bin/dvc" config "remote.$remote.url")
    export DEFECTSEG_REMOTE
fi
array=$(sbatch --parsable --export=ALL --array="1-$workers" "$@" "$here/worker.sbatch" | cut -d';' -f1)
assembly=$(sbatch --parsable --export=ALL --dependency="afterok:$array" --kill-on-invalid-dep=yes "$@" "$here/assemble.sbatch" | cut -d';' -f1)
echo "workers: job array $array ($workers tasks); assembly: job $assembly, once every worker succeeded"
