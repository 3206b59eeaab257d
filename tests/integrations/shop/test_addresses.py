"""Customer addresses: internationalised ones are delivered, hostile ones never cost an order.

Delivery goes to real aiosmtpd servers on loopback: one that advertises SMTPUTF8 (RFC 6531)
and one that does not.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import json
from email.message import EmailMessage

import pytest

from tests.integrations.shop.conftest import order_body
from tests.integrations.shop.test_webhooks import SHOPIFY_SECRET, WOO_SECRET, encoded, shopify, woocommerce

TRACKING = "https://track.example.com/o/{}?k=7f3a"


def parse_message(content: bytes) -> EmailMessage:
    """RFC 6532: an SMTPUTF8 message's headers are UTF-8 (the bytes parser would leave surrogates)."""
    message = email.message_from_string(content.decode(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


@pytest.fixture
def mail_server(request, smtp_server, smtputf8_server):
    """The SMTPUTF8 server unless the test says `parametrize("mail_server", ["plain"], indirect=True)`."""
    return smtp_server if getattr(request, "param", "smtputf8") == "plain" else smtputf8_server


@pytest.fixture
def app_config(mail_server):
    return {
        "SMTP_URL": mail_server.url,
        "EMAIL_FROM": "Shop <orders@shop.example.com>",
        "SHOPIFY_WEBHOOK_SECRET": SHOPIFY_SECRET,
        "WOOCOMMERCE_WEBHOOK_SECRET": WOO_SECRET,
    }


@pytest.fixture
def owner(app, make_key) -> dict[str, str]:
    from qrsvc.keys import split_key

    plain = make_key("shop-owner")
    app.config["SHOP_OWNER_KEY"] = split_key(plain)
    return {"Authorization": f"Bearer {plain}"}


def place(client, auth, number, address, name="Jörg Müller"):
    response = client.post(
        "/v1/shop/orders", json=order_body(number, customer={"name": name, "email": address}), headers=auth
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def drain(runner) -> str:
    result = runner.invoke(args=["outbox", "send", "--all"])
    assert result.exit_code == 0, result.output
    return result.output


def order_of(client, auth, order_id):
    response = client.get(f"/v1/shop/orders/{order_id}", headers=auth)
    assert response.status_code == 200
    return response.get_json()


@pytest.mark.parametrize(
    ("given", "envelope"),
    [
        ("ü@example.com", "ü@example.com"),
        ("kunde@müller.de", "kunde@xn--mller-kva.de"),
        ("Jörg.Müller@Bücher.example", "Jörg.Müller@xn--bcher-kva.example"),
        ("用户@例子.广告", "用户@xn--fsqu00a.xn--4rr70v"),
    ],
)
def test_international_addresses_arrive_over_smtputf8(
    client, auth, runner, mail_server, decode, given, envelope
) -> None:
    order = place(client, auth, "1001", given)
    assert order["customer"]["email"] == given
    assert order["email"]["status"] == "queued"
    assert "sent 1" in drain(runner)
    (sender, recipients, content), *others = mail_server.messages
    assert others == []
    assert (sender, recipients) == ("orders@shop.example.com", [envelope])
    message = parse_message(content)
    assert email.utils.parseaddr(message["To"]) == ("Jörg Müller", envelope)
    _text, related = message.iter_parts()
    _html, image = related.iter_parts()
    assert decode(image.get_content()) == [TRACKING.format(1001)]
    stored = order_of(client, auth, order["id"])["email"]
    assert (stored["status"], stored["to"], stored["last_error"]) == ("sent", envelope, None)


@pytest.mark.parametrize("mail_server", ["plain"], indirect=True)
def test_server_without_smtputf8_fails_a_non_ascii_mailbox_clearly_and_keeps_the_order(
    client, auth, runner, mail_server
) -> None:
    order = place(client, auth, "2001", "ü@example.com")
    assert order["email"]["status"] == "queued"
    assert "failed 1" in drain(runner)  # no retries: no later attempt can succeed
    assert mail_server.messages == []
    after = order_of(client, auth, order["id"])
    assert after["order_number"] == "2001"
    email_status = after["email"]
    assert (email_status["status"], email_status["attempts"], email_status["next_attempt_at"]) == (
        "failed",
        1,
        None,
    )
    assert "SMTPUTF8" in email_status["last_error"]
    assert "ü@example.com" in email_status["last_error"]
    assert "sent 0, retrying later 0, failed 0" in drain(runner)


@pytest.mark.parametrize("mail_server", ["plain"], indirect=True)
def test_server_without_smtputf8_still_takes_an_idna_domain_as_its_ascii_form(
    client, auth, runner, mail_server
) -> None:
    place(client, auth, "2002", "kunde@müller.de")
    assert "sent 1" in drain(runner)
    ((_sender, recipients, content),) = mail_server.messages
    assert recipients == ["kunde@xn--mller-kva.de"]
    assert content.isascii()  # 7-bit: no SMTPUTF8, no 8BITMIME needed
    assert email.utils.parseaddr(parse_message(content)["To"])[1] == "kunde@xn--mller-kva.de"


HOSTILE = [
    pytest.param("ada@example.com\r\nBcc: victim@example.org", id="crlf-bcc"),
    pytest.param("ada@example.com\nBcc: victim@example.org", id="lf-bcc"),
    pytest.param("ada@example.com, victim@example.org", id="two-addresses"),
    pytest.param("Ada <ada@example.com>", id="display-name"),
    pytest.param("not-an-address", id="missing-at"),
    pytest.param("ada@localhost", id="no-dot"),
    pytest.param("ada@", id="no-domain"),
    pytest.param("a" * 65 + "@example.com", id="local-part-too-long"),
    pytest.param("ada@" + "d" * 300 + ".com", id="domain-too-long"),
    pytest.param("ada@" + "x" * 10_000 + ".example.com", id="very-long"),
    pytest.param("ada\x00@example.com", id="nul"),
]


@pytest.mark.parametrize("address", HOSTILE)
def test_hostile_addresses_are_a_clear_400_on_the_api(client, auth, address) -> None:
    response = client.post(
        "/v1/shop/orders", json=order_body("3001", customer={"name": "Ada", "email": address}), headers=auth
    )
    assert response.status_code == 400, response.get_json()
    body = response.get_json()
    assert (body["error"], body["field"]) == ("invalid_parameter", "customer.email")
    # NUL is refused by the core's text parser before the address check, with its own sentence.
    assert body["message"].startswith(
        ("customer.email is not an email address", "customer.email must not contain NUL")
    )
    assert client.get("/v1/shop/orders", headers=auth).get_json()["items"] == []


@pytest.mark.parametrize("address", HOSTILE)
def test_webhook_orders_with_hostile_addresses_are_kept_with_a_failed_email(
    client, owner, runner, mail_server, address
) -> None:
    """The customer has paid: refusing the delivery would lose the order on every retry."""
    response = shopify(client, "orders", encoded("shopify_order", email=address, contact_email=address))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["status"] == "created"
    (order,) = client.get("/v1/shop/orders", headers=owner).get_json()["items"]
    assert order["order_number"] == "#9999"
    assert "\r" not in order["customer"]["email"] and "\n" not in order["customer"]["email"]
    assert len(order["customer"]["email"]) <= 320
    email_status = order["email"]
    assert (email_status["status"], email_status["attempts"], email_status["next_attempt_at"]) == (
        "failed",
        0,
        None,
    )
    assert email_status["last_error"].startswith("the customer's email address is not usable")
    assert "sent 0, retrying later 0, failed 0" in drain(runner)
    assert mail_server.messages == []
    eml = client.get(f"/v1/shop/orders/{order['id']}/confirmation.eml", headers=owner)
    assert eml.status_code == 200
    assert b"victim" not in eml.data
    # The platform's retry of the same delivery is recognised, not stored twice.
    again = shopify(client, "orders", encoded("shopify_order", email=address, contact_email=address))
    assert again.get_json()["status"] == "duplicate_delivery"


@pytest.mark.parametrize(
    ("send", "fixture", "changes"),
    [
        (shopify, "shopify_order", {"email": "ü@example.com", "contact_email": "ü@example.com"}),
        (woocommerce, "woocommerce_order", {"billing": {"first_name": "Jörg", "email": "ü@example.com"}}),
    ],
)
def test_webhook_orders_with_international_addresses_are_stored_and_delivered(
    client, owner, runner, mail_server, send, fixture, changes
) -> None:
    response = send(client, "orders", encoded(fixture, **changes))
    assert response.status_code == 200, response.get_json()
    (order,) = client.get("/v1/shop/orders", headers=owner).get_json()["items"]
    assert order["customer"]["email"] == "ü@example.com"
    assert order["email"]["status"] == "queued"
    assert "sent 1" in drain(runner)
    assert [recipients for _, recipients, _ in mail_server.messages] == [["ü@example.com"]]


@pytest.mark.parametrize("app_config", [{"SMTP_URL": None}])
def test_without_smtp_an_international_address_is_stored_and_disabled(client, auth) -> None:
    order = place(client, auth, "4001", "ü@müller.de")
    assert (order["customer"]["email"], order["email"]["status"]) == ("ü@müller.de", "disabled")
    eml = client.get(f"/v1/shop/orders/{order['id']}/confirmation.eml", headers=auth)
    assert email.utils.parseaddr(parse_message(eml.data)["To"])[1] == "ü@xn--mller-kva.de"


@pytest.mark.parametrize(
    "billing",
    [
        pytest.param({"first_name": "", "last_name": ""}, id="no-name"),
        pytest.param({"first_name": "Ada\r\nX-Injected: 1", "last_name": "Lovelace\x00"}, id="control-name"),
    ],
)
def test_webhook_orders_without_a_usable_name_are_kept_too(
    client, owner, runner, mail_server, billing
) -> None:
    """With no name the address stands in for it: a hostile address must not refuse the paid order."""
    from tests.integrations.shop.test_webhooks import payload

    body = payload("woocommerce_order")
    body["billing"] = {**body["billing"], **billing, "email": "ada@example.com\r\nBcc: victim@example.org"}
    body["shipping"] = {**body["shipping"], "address_1": "Main St 1\nBack door"}
    response = woocommerce(client, "orders", json.dumps(body).encode())
    assert response.status_code == 200, response.get_json()
    (order,) = client.get("/v1/shop/orders", headers=owner).get_json()["items"]
    assert order["customer"]["name"].isprintable() and order["customer"]["name"].strip()
    assert all(value.isprintable() for value in order["shipping_address"].values())
    assert order["email"]["status"] == "failed"
    assert mail_server.messages == []
