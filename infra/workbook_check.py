"""Validate infra/app/workbook.json (the Azure Monitor workbook the Bicep deploys) before anything is deployed.

Its JSON must match infra/workbook.schema.json (the parts of Microsoft's workbook format it uses), every query must be
bound to a time parameter the workbook declares, every ``{Parameter}`` a query uses must be declared, and step names
must be unique. Prints one line; exit 0 when valid, 1 with each problem named. Run by infra/check.sh.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

INFRA = Path(__file__).resolve().parent
WORKBOOK = INFRA / "app" / "workbook.json"
SCHEMA = INFRA / "workbook.schema.json"
PLACEHOLDER = re.compile(r"\{([A-Za-z][A-Za-z0-9_]*)(?::[a-z]+)?\}")


def problems(workbook: Any, schema: Any) -> list[str]:
    """Every problem with ``workbook``, each naming where it is; empty when it is valid."""
    import jsonschema

    validator = jsonschema.Draft7Validator(schema)
    found = [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(top)'}: {error.message}"
        for error in sorted(validator.iter_errors(workbook), key=lambda e: list(e.absolute_path))
    ]
    if found:
        return found
    items = workbook["items"]
    declared = {p["name"] for item in items if item["type"] == 9 for p in item["content"]["parameters"]}
    names = [item["name"] for item in items]
    found += [f"items: step name {name!r} is used twice" for name in sorted({n for n in names if names.count(n) > 1})]
    for item in (i for i in items if i["type"] == 3):
        content = item["content"]
        if content["timeContextFromParameter"] not in declared:
            found.append(f"{item['name']}: time parameter {content['timeContextFromParameter']!r} is not declared")
        for used in sorted(set(PLACEHOLDER.findall(content["query"])) - declared):
            found.append(f"{item['name']}: the query uses {{{used}}}, which is not a declared parameter")
    return found


def main() -> int:
    try:
        workbook, schema = json.loads(WORKBOOK.read_text()), json.loads(SCHEMA.read_text())
    except (OSError, ValueError) as err:
        print(f"workbook check: FAILED: cannot read {err}")
        return 1
    found = problems(workbook, schema)
    for problem in found:
        print(f"  {WORKBOOK.relative_to(INFRA.parent)}: {problem}")
    queries = sum(1 for item in workbook.get("items", []) if isinstance(item, dict) and item.get("type") == 3)
    print(f"workbook check: {'FAILED' if found else 'OK'}: {queries} queries, {len(found)} problems")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
