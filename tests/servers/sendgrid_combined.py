"""Mail Send and the suppression lists on one loopback port, as SendGrid serves them.

The provider has one ``provider.sendgrid.host`` for both, so a send that first reads the
suppression lists needs one server answering both. This one is made of the two fakes'
own handlers, so it answers exactly as each of them does: ``mail`` records and scripts
the Mail Send requests, ``suppressions`` holds the seeded lists and scripted failures.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self

from servers import sendgrid_fake, sendgrid_suppressions_fake
from servers.loopback import LoopbackHTTP
from servers.sendgrid_fake import FakeSendGrid
from servers.sendgrid_suppressions_fake import FakeSuppressions


class FakeSendGridApi:
    def __init__(self, api_key: str = "SG.test-key") -> None:
        self.api_key = api_key
        self.mail = FakeSendGrid(api_key)
        self.suppressions = FakeSuppressions(api_key)
        handler = type(
            "Handler",
            (
                sendgrid_fake.handler_for(self.mail),  # do_POST
                sendgrid_suppressions_fake.handler_for(self.suppressions),  # do_GET
            ),
            {},
        )
        self._server = LoopbackHTTP(handler)

    @property
    def url(self) -> str:
        return self._server.url

    def __enter__(self) -> Self:
        # The parts run their own servers too: their shutdown also ends scripted stalls.
        self.mail.__enter__()
        self.suppressions.__enter__()
        self._server.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.stop()
        self.suppressions.__exit__(exc_type, exc, tb)
        self.mail.__exit__(exc_type, exc, tb)
