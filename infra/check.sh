#!/usr/bin/env bash
# Static security checks of the Bicep in infra/ with checkov, from its own venv (.venv-infra at the repo
# root) because checkov's pinned dependencies clash with the app's. Offline apart from PyPI on first run.
set -euo pipefail

CHECKOV_VERSION="3.3.30"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv-infra"
cd "$root"

if [[ "$("$venv/bin/checkov" --version 2>/dev/null || true)" != "$CHECKOV_VERSION" ]]; then
  [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION"
fi

# The workbook's JSON against its schema (infra/workbook.schema.json), with the dev virtualenv's jsonschema.
python="$root/.venv/bin/python"
[[ -x "$python" ]] || python=python3
"$python" infra/workbook_check.py

report="$(mktemp)"
trap 'rm -f "$report"' EXIT
status=0
"$venv/bin/checkov" -d infra --framework bicep --skip-download --quiet --compact \
  --config-file infra/checkov.yaml --output json >"$report" 2>/dev/null || status=$?

"$venv/bin/python" - "$report" "$status" <<'PY'
"""Summarise checkov's JSON report in one line; list failures first."""
import json
import sys

path, status = sys.argv[1], int(sys.argv[2])
try:
    with open(path, encoding="utf-8") as handle:
        report = json.load(handle)
except ValueError:
    print(f"infra check: FAILED (checkov exited {status} without a report)")
    sys.exit(1)
reports = report if isinstance(report, list) else [report]
totals = {"passed": 0, "failed": 0, "skipped": 0, "parsing_errors": 0}
for item in reports:
    for key in totals:
        totals[key] += item.get("summary", {}).get(key, 0)
    for check in item.get("results", {}).get("failed_checks", []):
        lines = check.get("file_line_range", [0, 0])
        print(f"  {check['check_id']} {check['resource']} infra{check['file_path']}:{lines[0]}-{lines[1]}"
              f"  {check['check_name']}")
ok = status == 0 and totals["failed"] == 0 and totals["parsing_errors"] == 0 and totals["passed"] > 0
summary = ", ".join(f"{value} {key.replace('_', ' ')}" for key, value in totals.items())
print(f"infra check (checkov, bicep): {'OK' if ok else 'FAILED'}: {summary}")
sys.exit(0 if ok else 1)
PY
