"""Budgets: spend limits on the calls the proxy sees (docs/ledger.md "Budgets").

config.py (the file, scopes, periods), spend.py (the spend tracker), estimate.py and refusal.py
are pure; addon.py holds the mitmproxy hooks; status.py what `usage-ledger budget` shows.
"""
