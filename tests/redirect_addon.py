"""mitmproxy addon for end-to-end tests: every upstream connection goes to the stand-in provider
on $STANDIN_PORT (plain HTTP), while the flow keeps the host the client addressed, so the
ledger sees `api.x.ai`, `api.openai.com`, ... as it would in real use."""

import os


class Redirect:
    def server_connect(self, data) -> None:
        data.server.address = ("127.0.0.1", int(os.environ["STANDIN_PORT"]))


addons = [Redirect()]
