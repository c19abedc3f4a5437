"""Structured logs: one line per event, secrets masked, shutdown cuts not errors."""

from __future__ import annotations

import asyncio
import json
import logging

import structlog

from sandhaven import logs


def _capture(capsys, emit):  # type: ignore[no-untyped-def]
    logs.configure("info", "json")
    emit()
    err = capsys.readouterr().err.strip().splitlines()
    return [json.loads(line) for line in err]


def test_credentials_are_masked_in_fields_and_values(capsys):
    def emit() -> None:
        structlog.get_logger("t").info("x", token="abc", password="pw", session_cookie="c",
                                       url="http://h/login/verify?token=SECRET123&x=1",
                                       header="Bearer SECRETTOKEN", path="/setup/" + "A" * 40)

    (event,) = _capture(capsys, emit)
    assert event["token"] == event["password"] == event["session_cookie"] == "**********"
    dumped = json.dumps(event)
    assert "SECRET" not in dumped and "A" * 40 not in dumped and "pw" not in dumped.replace(
        "password", "")


def test_a_request_cut_at_shutdown_is_one_info_line(capsys):
    def emit() -> None:
        try:
            raise asyncio.CancelledError("Task cancelled, timeout graceful shutdown exceeded")
        except asyncio.CancelledError as exc:
            logging.getLogger("uvicorn.error").error("Exception in ASGI application\n",
                                                     exc_info=exc)

    (event,) = _capture(capsys, emit)
    assert event["level"] == "info" and event["event"] == "request_cut_at_shutdown"
    assert "exception" not in event
