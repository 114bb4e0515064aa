"""Subscribers, lists and the send ledger, kept in one SQLite file (``store.path``) or a
PostgreSQL database (``store.url``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..addresses import normalise_address
from .importer import ImportReport, RowError, export_csv, import_csv
from .ledger import Ledger, LedgerEntry, LedgerState, SendLock
from .subscribers import MailingList, StatusEvent, Store

if TYPE_CHECKING:
    from ..config import LoadedConfig

__all__ = [
    "ImportReport",
    "Ledger",
    "LedgerEntry",
    "LedgerState",
    "MailingList",
    "RowError",
    "SendLock",
    "StatusEvent",
    "Store",
    "export_csv",
    "import_csv",
    "normalise_address",
    "open_store",
]


def open_store(loaded: LoadedConfig) -> Store:
    """The store named by the config, with the config's lists created."""
    store = Store.open(loaded.store_location)
    for mailing_list in loaded.settings.lists:
        store.ensure_list(mailing_list.name, mailing_list.description)
    return store
