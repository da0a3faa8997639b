"""Which node a command talks to, from the settings or ``--pacs AET@HOST:PORT``, and medapp's own AE."""

from __future__ import annotations

from typing import Any

from medapp.pacs.errors import PacsError
from medapp.pacs.nodes import LocalAE, Node, node_from_dict, parse_node

__all__ = ["local_ae", "configured_nodes", "resolve_node"]


def local_ae(settings: Any) -> LocalAE:
    return LocalAE(
        ae_title=settings.pacs_ae_title,
        port=int(settings.pacs_port),
        listen_address=settings.pacs_listen_address,
        timeout=float(settings.pacs_timeout),
    )


def configured_nodes(settings: Any) -> list[Node]:
    return [node_from_dict(item) for item in settings.pacs_nodes]


def resolve_node(settings: Any, *, pacs: str | None = None, name: str | None = None) -> Node:
    """``--pacs`` wins, then ``--node NAME``, then the settings' default node, then the only/first node."""
    if pacs:
        return parse_node(pacs)
    nodes = configured_nodes(settings)
    wanted = name or settings.pacs_default_node
    if wanted:
        for node in nodes:
            if node.name == wanted:
                return node
        known = ", ".join(n.name for n in nodes) or "none"
        raise PacsError(f"no PACS node named {wanted!r} in the settings (configured: {known})")
    if not nodes:
        raise PacsError("no PACS node configured: add one to pacs_nodes in the settings, or pass --pacs AET@HOST:PORT")
    return nodes[0]
