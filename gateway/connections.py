"""Relay connections built from the services' pages of {cursor, node} items."""

from __future__ import annotations

from typing import Any

import graphene
from graphene import relay


def build(connection_cls: type[relay.Connection], page: dict[str, Any]) -> relay.Connection:
    items = page["items"]
    edges = [connection_cls.Edge(node=item["node"], cursor=item["cursor"]) for item in items]
    return connection_cls(
        edges=edges,
        page_info=relay.PageInfo(
            has_next_page=page["has_next_page"], has_previous_page=False,
            start_cursor=items[0]["cursor"] if items else None,
            end_cursor=items[-1]["cursor"] if items else None))


def nodes(connection: relay.Connection) -> list[Any]:
    return [edge.node for edge in connection.edges]


PageSize = graphene.Int(description="How many items, 1 to 100 (default 20).")
After = graphene.String(description="The endCursor of the previous page.")
