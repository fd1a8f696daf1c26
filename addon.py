"""mitmproxy entry point: `mitmdump -s addon.py`. The addon lives in the usage_ledger package."""

from usage_ledger.ledger import UsageLedger

addons = [UsageLedger()]
