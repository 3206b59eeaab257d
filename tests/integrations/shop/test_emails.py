"""Email delivery through the outbox to a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from integrations.shop.mail import SmtpTransport
from tests.integrations.shop.conftest import SmtpServer, order_body, parse_message

TRACKING = "https://track.example.com/o/{}?k=7f3a"


@pytest.fixture
def app_config(smtp_server, request):
    """SMTP on the test server; `parametrize("app_config", [...], indirect=True)` adds to it."""
    extra = getattr(request, "param", {})
    return {"SMTP_URL": smtp_server.url, "EMAIL_FROM": "Shop <orders@shop.example.com>", **extra}


def place(client, auth, number="1001"):
    response = client.post("/v1/shop/orders", json=order_body(number), headers=auth)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def send(runner, *options):
    result = runner.invoke(args=["outbox", "send", *options])
    assert result.exit_code == 0, result.output
    return result.output


def email_of(client, auth, order):
    return client.get(f"/v1/shop/orders/{order['id']}", headers=auth).get_json()["email"]


def test_the_order_only_queues_the_email(client, auth, smtp_server) -> None:
    order = place(client, auth)
    assert order["email"] == {
        "status": "queued",
        "to": "ada@example.com",
        "attempts": 0,
        "last_error": None,
        "next_attempt_at": order["created_at"],
        "sent_at": None,
    }
    assert smtp_server.messages == []  # the request never talks to the mail server


def test_confirmation_arrives_and_decodes(client, auth, runner, smtp_server, decode) -> None:
    order = place(client, auth)
    assert "sent 1, retrying later 0, failed 0" in send(runner)
    email = email_of(client, auth, order)
    assert (email["status"], email["attempts"], email["last_error"]) == ("sent", 1, None)
    assert email["sent_at"] >= order["created_at"]
    (sender, recipients, content), *others = smtp_server.messages
    assert others == []
    assert (sender, recipients) == ("orders@shop.example.com", ["ada@example.com"])
    message = parse_message(content)
    assert message["From"] == "Shop <orders@shop.example.com>"
    text, related = message.iter_parts()
    assert "1001" in text.get_content() and TRACKING.format(1001) in text.get_content()
    _html, image = related.iter_parts()
    assert decode(image.get_content()) == [TRACKING.format(1001)]
    # The .eml endpoint serves the very message that was sent.
    eml = client.get(f"/v1/shop/orders/{order['id']}/confirmation.eml", headers=auth)
    assert eml.data == content


def test_smtp_down_keeps_the_order_and_the_outbox_delivers_later(
    client, auth, runner, smtp_server, monkeypatch
) -> None:
    from qrsvc import clock

    smtp_server.stop()
    order = place(client, auth, "2001")
    assert "sent 0, retrying later 1, failed 0" in send(runner)
    email = email_of(client, auth, order)
    assert email["status"] == "queued"
    assert email["attempts"] == 1
    assert "ConnectionRefusedError" in email["last_error"]
    assert email["next_attempt_at"] > order["created_at"]

    smtp_server.start()
    early = runner.invoke(args=["outbox", "send"])
    assert early.exit_code == 0, early.output
    assert "sent 0" in early.output  # backoff: not due yet
    assert smtp_server.messages == []

    later = clock.now() + timedelta(hours=1)
    monkeypatch.setattr(clock, "now", lambda: later)
    result = runner.invoke(args=["outbox", "send"])
    assert result.exit_code == 0, result.output
    assert "sent 1" in result.output
    assert len(smtp_server.messages) == 1
    assert "2001" in parse_message(smtp_server.messages[0][2])["Subject"]

    again = runner.invoke(args=["outbox", "send", "--all"])
    assert "sent 0" in again.output
    assert len(smtp_server.messages) == 1  # no duplicate
    email = client.get(f"/v1/shop/orders/{order['id']}", headers=auth).get_json()["email"]
    assert (email["status"], email["attempts"], email["last_error"]) == ("sent", 2, None)


@pytest.mark.parametrize(
    "app_config", [{"OUTBOX_MAX_ATTEMPTS": 2, "OUTBOX_BACKOFF_SECONDS": 0}], indirect=True
)
def test_email_gives_up_after_max_attempts(client, auth, runner, smtp_server) -> None:
    smtp_server.stop()
    order = place(client, auth, "3001")
    assert order["email"]["status"] == "queued"
    assert "retrying later 1, failed 0" in send(runner)
    assert "retrying later 0, failed 1" in send(runner)
    email = client.get(f"/v1/shop/orders/{order['id']}", headers=auth).get_json()["email"]
    assert (email["status"], email["attempts"], email["next_attempt_at"]) == ("failed", 2, None)
    smtp_server.start()
    assert "sent 0" in runner.invoke(args=["outbox", "send", "--all"]).output
    assert smtp_server.messages == []


def test_a_sent_message_cannot_be_claimed_again(app, client, auth, runner, smtp_server) -> None:
    from integrations.shop import outbox
    from integrations.shop.models import OutboxMessage
    from qrsvc.extensions import db

    place(client, auth)
    send(runner)
    with app.app_context():
        (message_id,) = db.session.scalars(db.select(OutboxMessage.id))
        assert outbox.deliver(message_id, ignore_backoff=True) is None
    assert len(smtp_server.messages) == 1


@pytest.mark.parametrize("app_config", [{"SMTP_URL": None}], indirect=True)
def test_no_smtp_configured_means_disabled_and_outbox_send_says_so(client, auth, runner) -> None:
    order = place(client, auth)
    assert order["email"] == {
        "status": "disabled",
        "to": "ada@example.com",
        "attempts": 0,
        "last_error": None,
        "next_attempt_at": None,
        "sent_at": None,
    }
    result = runner.invoke(args=["outbox", "send"])
    assert result.exit_code != 0
    assert "QRSVC_SMTP_URL" in result.output


def test_smtp_url_forms_and_the_password_stays_out_of_sight(caplog) -> None:
    plain = SmtpTransport.from_url("smtp://mailer:s3cr%40t@mail.example.com:2525")
    assert (plain.host, plain.port, plain.username, plain.password, plain.security) == (
        "mail.example.com",
        2525,
        "mailer",
        "s3cr@t",
        "starttls",  # credentials: STARTTLS unless the URL turns it off
    )
    assert SmtpTransport.from_url("smtp://mailer:pw@mail.example.com").port == 587
    assert SmtpTransport.from_url("smtp://mailer:pw@127.0.0.1:25?starttls=0").security == "none"
    assert SmtpTransport.from_url("smtp://mail.example.com").security == "none"
    assert SmtpTransport.from_url("smtp://mail.example.com").port == 25
    assert SmtpTransport.from_url("smtp://mail.example.com?starttls=1").security == "starttls"
    assert SmtpTransport.from_url("smtp://mail.example.com?starttls=1").port == 587
    assert SmtpTransport.from_url("smtps://mail.example.com").port == 465
    assert "s3cr" not in repr(plain) and "s3cr" not in plain.describe()
    with pytest.raises(ValueError, match="QRSVC_SMTP_URL"):
        SmtpTransport.from_url("http://mail.example.com")
    with pytest.raises(ValueError, match="starttls"):
        SmtpTransport.from_url("smtp://mailer:pw@mail.example.com?starttls=maybe")


@pytest.fixture
def auth_smtp():
    server = SmtpServer(logins={"mailer": "hunter2-secret"})
    server.start()
    yield server
    server.stop()


def test_smtp_login_with_the_url_credentials(app, client, auth, runner, auth_smtp, caplog) -> None:
    from integrations.shop import emails

    # Loopback without TLS: the URL has to say so.
    app.config["SMTP_URL"] = f"smtp://mailer:hunter2-secret@127.0.0.1:{auth_smtp.port}?starttls=0"
    emails.init_app(app)
    first = place(client, auth, "4001")
    send(runner)
    assert email_of(client, auth, first)["status"] == "sent"
    assert len(auth_smtp.messages) == 1

    app.config["SMTP_URL"] = f"smtp://mailer:wrong-hunter3@127.0.0.1:{auth_smtp.port}?starttls=0"
    app.config["SMTP_TIMEOUT"] = 2.0
    emails.init_app(app)
    order = place(client, auth, "4002")
    with caplog.at_level(logging.DEBUG):
        send(runner)
    email = email_of(client, auth, order)
    assert email["status"] == "queued"
    assert email["last_error"].startswith("SMTP")
    assert "not sent" in caplog.text
    assert "hunter" not in caplog.text and "hunter" not in email["last_error"]
    assert len(auth_smtp.messages) == 1


def test_credentials_are_never_sent_to_a_server_without_starttls(
    app, client, auth, runner, auth_smtp
) -> None:
    from integrations.shop import emails

    app.config["SMTP_URL"] = f"smtp://mailer:hunter2-secret@127.0.0.1:{auth_smtp.port}"
    app.config["SMTP_TIMEOUT"] = 2.0
    emails.init_app(app)
    order = place(client, auth, "5001")
    send(runner)
    email = email_of(client, auth, order)
    assert email["status"] == "queued"
    assert email["last_error"].startswith("SMTPNotSupportedError")
    assert "STARTTLS" in email["last_error"]
    assert auth_smtp.login_attempts == []
    assert auth_smtp.messages == []
