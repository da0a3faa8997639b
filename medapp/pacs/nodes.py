"""Who medapp talks to: DICOM nodes (AE title, host, port, optional TLS) and medapp's own application entity.

Why a parser of our own: every PACS command takes ``--pacs AET@HOST:PORT`` as well as the nodes in the settings
file, and both must be checked the same way so a typo is one clear sentence before any connection is tried. These
nodes are the only peers medapp ever connects to (README, "Safety").
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medapp.pacs.errors import PacsError

__all__ = ["Node", "LocalAE", "TlsOptions", "parse_node", "check_ae_title", "check_host", "node_from_dict",
           "RETRIEVE_METHODS"]

RETRIEVE_METHODS = ("get", "move")
_AE_CHARS = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # PS3.5 AE: 16 chars, no backslash, no control characters
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")  # RFC 1123 host name


def check_ae_title(value: Any) -> str | None:
    """None when `value` is a valid AE title, else the problem (end of a sentence)."""
    if not isinstance(value, str) or not _AE_CHARS.match(value) or not value.strip():
        return "must be an AE title: 1 to 16 printable ASCII characters, no backslash, not only spaces"
    return None


def check_host(value: Any) -> str | None:
    """None for an IPv4/IPv6 address or a host name, else the problem."""
    import ipaddress

    if not isinstance(value, str) or not value:
        return "must be a host name or an IP address"
    try:
        ipaddress.ip_address(value)
        return None
    except ValueError:
        pass
    return None if _HOSTNAME.match(value) else "must be a host name or an IP address"


def _check_port(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        return "must be a port number from 1 to 65535"
    return None


@dataclass(frozen=True)
class TlsOptions:
    """DICOM TLS (PS3.15 B.1): the CA that signed the PACS certificate, and our own certificate if it asks for one."""

    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""

    def context(self) -> ssl.SSLContext:
        """A client context that verifies the PACS certificate (against `ca_file`, else the system CAs)."""
        try:
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca_file or None)
            if self.cert_file:
                ctx.load_cert_chain(self.cert_file, self.key_file or None)
        except (OSError, ssl.SSLError) as exc:
            raise PacsError(f"TLS: cannot load the certificate files ({exc})") from exc
        return ctx


@dataclass(frozen=True)
class Node:
    """A remote DICOM node. `retrieve` says how it sends images: C-GET on our association, or C-MOVE to our SCP."""

    ae_title: str
    host: str
    port: int
    name: str = ""
    retrieve: str = "get"
    tls: TlsOptions | None = None

    def __str__(self) -> str:  # what messages and the audit log name: no patient data, only the address
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.ae_title}@{host}:{self.port}"

    def with_retrieve(self, method: str | None) -> Node:
        if method is None:
            return self
        if method not in RETRIEVE_METHODS:
            raise PacsError(f"retrieve method must be one of {', '.join(RETRIEVE_METHODS)}, not {method!r}")
        return Node(self.ae_title, self.host, self.port, self.name, method, self.tls)


@dataclass(frozen=True)
class LocalAE:
    """medapp's own application entity: its AE title, and where its storage SCP listens during a C-MOVE.

    `listen_address` "" (the default) means the one local address the PACS is routed through (`route_address`), not
    every interface: a laptop on a hospital network and a guest Wi-Fi at once exposes its storage SCP only on the
    network the PACS is on. Set it explicitly (e.g. "0.0.0.0") when the PACS reaches medapp through a NAT.
    """

    ae_title: str = "MEDAPP"
    port: int = 11112
    listen_address: str = ""
    timeout: float = 30.0


def parse_node(text: str, *, retrieve: str = "get") -> Node:
    """``AET@HOST:PORT`` (IPv6 hosts in brackets: ``AET@[::1]:104``) → `Node`, or a `PacsError` naming the problem."""
    text = (text or "").strip()
    m = re.match(r"^(?P<aet>[^@]+)@(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:\[\]]+)):(?P<port>\d+)$", text)
    if not m:
        raise PacsError(f"--pacs {text!r}: expected AET@HOST:PORT, for example PACS@10.0.0.5:104")
    aet, host = m.group("aet"), m.group("v6") or m.group("host")
    problem = check_ae_title(aet)
    if problem:
        raise PacsError(f"--pacs {text!r}: the AE title {problem}")
    problem = check_host(host)
    if problem:
        raise PacsError(f"--pacs {text!r}: the host {problem}")
    port = int(m.group("port"))
    if _check_port(port):
        raise PacsError(f"--pacs {text!r}: the port must be from 1 to 65535")
    return Node(aet, host, port, retrieve=retrieve)


NODE_KEYS = ("name", "ae_title", "host", "port", "retrieve", "tls")
TLS_KEYS = ("ca_file", "cert_file", "key_file")


def node_problem(item: Any) -> str | None:
    """The settings check of one ``pacs_nodes`` entry: None when fine, else the problem."""
    if not isinstance(item, dict):
        return 'entries must be objects like {"name": "pacs", "ae_title": "PACS", "host": "10.0.0.5", "port": 104}'
    unknown = set(item) - set(NODE_KEYS)
    if unknown:
        return f"node keys must be among {', '.join(NODE_KEYS)} (found {', '.join(sorted(unknown))})"
    name = item.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 64:
        return "each node needs a name (text, at most 64 characters)"
    for key, check in (("ae_title", check_ae_title), ("host", check_host), ("port", _check_port)):
        problem = check(item.get(key))
        if problem:
            return f"node {name!r}: {key} {problem}"
    if item.get("retrieve", "get") not in RETRIEVE_METHODS:
        return f"node {name!r}: retrieve must be one of {', '.join(RETRIEVE_METHODS)}"
    tls = item.get("tls")
    if tls is not None:
        if not isinstance(tls, dict) or set(tls) - set(TLS_KEYS):
            return f"node {name!r}: tls must be null or an object with {', '.join(TLS_KEYS)}"
        for key in TLS_KEYS:
            value = tls.get(key, "")
            if not isinstance(value, str) or (value and not Path(value).is_file()):
                return f"node {name!r}: tls.{key} must name an existing file"
        if tls.get("key_file") and not tls.get("cert_file"):
            return f"node {name!r}: tls.key_file needs tls.cert_file"
    return None


def node_from_dict(item: dict[str, Any]) -> Node:
    """A settings entry (already validated) → `Node`."""
    tls = item.get("tls")
    return Node(
        ae_title=item["ae_title"],
        host=item["host"],
        port=int(item["port"]),
        name=item["name"],
        retrieve=item.get("retrieve", "get"),
        tls=TlsOptions(**tls) if isinstance(tls, dict) else None,
    )


def route_address(host: str, port: int) -> str:
    """The local IP address the operating system would send packets to `host` from.

    Connecting a UDP socket only asks the routing table; no packet leaves the machine. Falls back to "0.0.0.0" when
    the host cannot be resolved or routed (the association itself will then name the problem).
    """
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except OSError:
        return "0.0.0.0"
    for family, kind, proto, _, sockaddr in infos:
        try:
            with socket.socket(family, kind, proto) as sock:
                sock.connect(sockaddr)
                return str(sock.getsockname()[0])
        except OSError:
            continue
    return "0.0.0.0"
