"""The job long poll's `progress` against a server from before it: the 400 such a server answers (its query
schema without the field, through the same parsing every route uses) makes the client ask again without it."""

from __future__ import annotations

import pytest

from pai_lab.client.jobs import without_refused_progress
from pai_lab.errors import BadInput, NotFound, PaiError, from_response
from pai_lab.schema import Int, Schema
from pai_lab.server.routing import parse_query


class QueryBeforeProgress(Schema):
    """The job query as servers had it before the long poll took `progress`."""

    history_after: Int | None = None
    wait: float = 10.0


def refusal(args: dict[str, list[bytes]]) -> PaiError:
    with pytest.raises(BadInput) as refused:
        parse_query(QueryBeforeProgress, args)
    # as the client sees it: the REST body turned back into the error
    return from_response(refused.value.status, refused.value.to_json())


def test_a_server_that_refuses_progress_is_asked_again_without_it():
    params = {"history_after": 3, "wait": 10.0, "progress": "worker_job:1/0/2[50%]"}
    error = refusal({k: [str(v).encode()] for k, v in params.items()})
    assert isinstance(error, BadInput) and error.field == "progress"
    assert without_refused_progress(params, error) == {"history_after": 3, "wait": 10.0}


def test_other_errors_stand():
    params = {"history_after": 3, "wait": 10.0, "progress": ""}
    other = refusal({"history_after": [b"-x"], "progress": [b""]})
    assert other.field == "history_after"
    assert without_refused_progress(params, other) is None
    # a refusal of progress when it was not sent, or another kind of error naming it, is not this case
    assert without_refused_progress({"history_after": 3}, refusal({"progress": [b"x"]})) is None
    assert without_refused_progress(params, NotFound("no job dlc-1", "progress")) is None
    assert without_refused_progress(None, refusal({"progress": [b"x"]})) is None
