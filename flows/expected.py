"""Recording-time addon for flows/record.py: tags each flow with its corpus case and the usage
the provider reported, read from the case file named by the `x-e2e-case` request header."""

import json
import os
from pathlib import Path

CORPUS = Path(os.environ.get("USAGE_LEDGER_CORPUS", Path(__file__).resolve().parents[1] / "tests" / "shared-corpus"))


class Expected:
    def request(self, flow):
        name = flow.request.headers.get("x-e2e-case")
        path = CORPUS / f"{name}.json"
        if name and path.exists():
            case = json.loads(path.read_text())
            flow.metadata["case"] = name
            flow.metadata["api"] = case["api"]
            flow.metadata["expected"] = case["expected"]


addons = [Expected()]
