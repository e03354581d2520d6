"""Queries to sites: a stock ClientApp's 'no such query' reply is recognised, and the
simulation runtime's tracebacks of a site's exception are left out while a query is out."""

from __future__ import annotations

import logging

import pytest
from flwr.app import Error, Message, RecordDict
from flwr.clientapp.client_app import ClientAppException
from flwr.common.constant import ErrorCode

from strategies.query import quiet_queries, unhandled

UNHANDLED = ["No query function registered with name 'data_check'",
             "Invalid message type: query.data_check"]


def runtime_logs(error: Exception, module_path: str = "/flwr/vce_api.py") -> None:
    """Log ``error`` as flwr 1.41's simulation runtime does: ERROR, inside its ``except``."""
    logger = logging.getLogger("flwr")
    try:
        raise error
    except Exception as raised:  # noqa: BLE001 - the runtime logs whatever a site raised
        logger.handle(logger.makeRecord("flwr", logging.ERROR, module_path, 143, raised, (),
                                        None))


@pytest.mark.parametrize("text", UNHANDLED)
def test_a_stock_clientapps_reply_is_recognised(flower_identity: None, text: str) -> None:
    reply = Message(Error(ErrorCode.CLIENT_APP_RAISED_EXCEPTION, f"<'{text}'>"),
                    reply_to=Message(RecordDict(), dst_node_id=1, message_type="query.x"))
    data_error = Message(Error(ErrorCode.CLIENT_APP_RAISED_EXCEPTION, "<'images missing'>"),
                         reply_to=Message(RecordDict(), dst_node_id=1,
                                          message_type="query.x"))
    assert unhandled(reply) and not unhandled(data_error)


def test_runtime_tracebacks_are_left_out_only_while_a_query_is_out(caplog) -> None:
    # Prepare
    quiet = quiet_queries()
    caplog.set_level(logging.ERROR, logger="flwr")
    # Execute: the same site exception during a query, and during a training round
    with quiet.query():
        runtime_logs(ClientAppException("images missing"))
        runtime_logs(ClientAppException("x"), "/flwr/raybackend.py")
        runtime_logs(ValueError("the server's own error"))
    runtime_logs(ClientAppException("training failed"))
    # Assert
    logged = [str(r.msg) for r in caplog.records]
    assert len(logged) == 2
    assert logged[0] == "the server's own error" and logged[1].endswith("training failed")
