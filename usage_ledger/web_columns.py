"""mitmweb shows each call's cost: the flow list's `comment` column, on by default.

mitmweb's stock `web_columns` (mitmproxy/tools/web/webaddons.py) leave the comment out, and the
comment is where the addon writes model, tokens and cost. Once everything is configured
(`running`: command line, config.yaml and scripts all applied), the column is added, but only
while `web_columns` still has mitmweb's stock value: a user who set the columns in any other way
keeps their own. mitmdump and the console have no `web_columns` and are left alone.
"""

from __future__ import annotations

import logging

from mitmproxy import ctx

log = logging.getLogger(__name__)

COMMENT_COLUMN = "comment"  # mitmweb's name for the flow.comment column (AVAILABLE_WEB_COLUMNS)


class WebColumns:
    def running(self) -> None:
        options = ctx.options
        if "web_columns" not in options or options.has_changed("web_columns"):
            return
        columns = list(options.web_columns)
        if COMMENT_COLUMN not in columns:
            options.update(web_columns=[*columns, COMMENT_COLUMN])
            log.debug("usage-ledger: mitmweb flow list shows the comment column (the call's cost)")
