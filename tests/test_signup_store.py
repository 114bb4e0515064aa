"""What a sign-up writes to the store, on each backend: a new address is kept exactly as an
import keeps one, pending on the lists asked for, with its consent request."""

from __future__ import annotations

from pathlib import Path

from newsletter.send_models import SubscriberStatus
from newsletter.signup import request_signup
from newsletter.store import Store
from newsletter.store.subscribers import NewSubscriber

HASHED_IP = "0" * 64


def kept(store: Store, email: str) -> tuple[object, ...]:
    """Everything stored about an address but its id and times."""
    row = store.db.one(
        "SELECT email, email_key, name, attributes, status, source FROM subscribers "
        "WHERE email = ?",
        (email,),
    )
    assert row is not None
    events = [(e.status, e.source, e.detail, e.list_name) for e in store.events(email)]
    return (*row[1:], events)


def test_a_new_address_is_stored_as_an_import_stores_it(store_location: Path | str) -> None:
    store = Store.open(store_location)
    try:
        store.ensure_list("guests")
        store.ensure_list("news")
        with store.db.transaction():
            made = request_signup(
                store, "New.Reader@example.org", "Nú Reader", ["guests", "news"], "json", HASHED_IP
            )
        store.upsert_many(
            [NewSubscriber("imported@example.org", "Nú Reader")], None, source="signup (json)"
        )

        assert made is not None
        assert made.email == "New.Reader@example.org"
        assert made.lists == ["guests", "news"]
        signed_up = kept(store, "New.Reader@example.org")
        imported = kept(store, "imported@example.org")
        assert signed_up[0] == "new.reader@example.org"
        assert signed_up[1:4] == imported[1:4] == ("Nú Reader", "{}", "subscribed")
        assert signed_up[4] == imported[4] == "signup (json)"
        added, *pending = signed_up[5]
        assert [added] == imported[5] == [("subscribed", "signup (json)", "added", None)]
        assert [event[:3] for event in pending] == [("pending", "signup", "json")] * 2
        assert store.list_statuses(made.subscriber_id) == {
            "guests": SubscriberStatus.PENDING,
            "news": SubscriberStatus.PENDING,
        }
        consents = store.db.all(
            "SELECT request, source, ip_hash, confirmed_at FROM consents WHERE subscriber_id = ?",
            (made.subscriber_id,),
        )
        assert [tuple(row) for row in consents] == [(made.request, "json", HASHED_IP, None)] * 2
    finally:
        store.close()


def test_asking_again_adds_no_one_and_a_subscribed_list_is_not_asked(
    store_location: Path | str,
) -> None:
    store = Store.open(store_location)
    try:
        store.ensure_list("guests")
        store.ensure_list("news")
        first = request_signup(store, "again@example.org", "", ["guests"], "form", HASHED_IP)
        assert first is not None
        store.set_membership(first.subscriber_id, "guests", SubscriberStatus.SUBSCRIBED, "confirm")

        again = request_signup(
            store, "AGAIN@example.org", "", ["guests", "news"], "form", HASHED_IP
        )
        nothing = request_signup(store, "again@example.org", "", ["guests"], "form", HASHED_IP)

        assert again is not None
        assert again.subscriber_id == first.subscriber_id
        assert again.lists == ["news"]
        assert nothing is None
        assert store.count() == 1
    finally:
        store.close()
