"""Who commits: the unit of work that started it — one request, one CLI command, one worker job.

Services write in the session and never commit or roll back the whole of it. A
view decorated with `transactional` commits once after it returns a response below
400 and rolls back when it raises or answers with an error; a CLI command or a job
wraps its work in `unit_of_work()`. A service that must undo only its own part (a
duplicate that the unique constraint refuses, say) runs it in `savepoint()`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, ParamSpec

from flask import Response, current_app

from qrsvc.extensions import db

P = ParamSpec("P")


@contextmanager
def unit_of_work() -> Iterator[None]:
    """Commit what the block wrote when it ends; roll all of it back when it raises."""
    try:
        yield
    except BaseException:
        db.session.rollback()
        raise
    db.session.commit()


def transactional(view: Callable[P, Any]) -> Callable[P, Response]:
    """View decorator: the request's writes commit once after the view returns a non-error response.

    An exception, or a response of 400 or more, rolls them back. Put it below
    `require_key`, which counts the request whatever the view did.
    """

    @wraps(view)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> Response:
        try:
            response = current_app.make_response(view(*args, **kwargs))
        except BaseException:
            db.session.rollback()
            raise
        if response.status_code < 400:
            db.session.commit()
        else:
            db.session.rollback()
        return response

    return wrapped


@contextmanager
def savepoint() -> Iterator[None]:
    """Undo only this block's writes when it raises (the exception goes on); the rest stays pending."""
    with db.session.begin_nested():
        yield


__all__ = ["savepoint", "transactional", "unit_of_work"]
