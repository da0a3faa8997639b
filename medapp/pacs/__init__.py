"""DICOM networking with a PACS: echo, find, retrieve (C-GET or C-MOVE) into a verified local cache, store.

Torch-free and import-light: pynetdicom is imported inside the functions that talk to the network. The modules:
`nodes` (who we talk to), `association` (one checked association with timeouts), `query` (C-FIND),
`cache` (the resumable on-disk cache), `retrieve` (C-GET / C-MOVE), `store` (C-STORE), `config` (nodes from the
settings and ``--pacs``). The audited entry points for the CLI and the window are in `medapp.jobs.pacs`.
"""

from medapp.pacs.errors import PacsError, RetrieveCancelled
from medapp.pacs.nodes import LocalAE, Node, parse_node

__all__ = ["PacsError", "RetrieveCancelled", "Node", "LocalAE", "parse_node"]
