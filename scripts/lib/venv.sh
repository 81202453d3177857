# Sourced by scripts/test and scripts/bench-*: the Python checkers (boto3, moto, DuckDB, pyarrow)
# in a venv at exactly the versions requirements-test.lock pins (moto and jsonata-python are
# patched at private module paths by tests/py/run_organization_sfn.py): no dependency
# resolution, then pip check. Reinstalls when the lock changes. Exports PATCHTRAIL_PYTHON.
venv="${PATCHTRAIL_VENV:-$PWD/.venv}"
if [ ! -x "$venv/bin/python" ] || ! cmp -s requirements-test.lock "$venv/.requirements-test.lock"; then
  echo "==> installing Python checkers into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  "$venv/bin/pip" install --quiet --no-deps -r requirements-test.lock
  "$venv/bin/pip" check
  cp requirements-test.lock "$venv/.requirements-test.lock"
fi
export PATCHTRAIL_PYTHON="$venv/bin/python"
