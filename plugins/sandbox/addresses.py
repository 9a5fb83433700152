"""Which network addresses the gateway may be made to connect to on a tenant's behalf: callbacks
(``gateway.invoke.callbacks``) and functions' egress (``egress``) share this one rule.

An address is reachable when it is global — not loopback, private, link-local (where cloud
metadata services answer, 169.254.169.254), shared (100.64.0.0/10), unique-local, multicast or
reserved — and so is every IPv4 address it carries. Operator settings lift the rule
(``TIERGATE_CALLBACK_ALLOW_PRIVATE``, ``TIERGATE_EGRESS_ALLOW_PRIVATE``); nothing here reads them.
"""

from __future__ import annotations

import ipaddress
from ipaddress import IPv4Address, IPv6Address

# IPv6 prefixes whose last 32 bits are an IPv4 address: IPv4-compatible (deprecated), IPv4-
# translated (SIIT) and the NAT64 well-known prefix.
_LAST_32_BITS = tuple(ipaddress.ip_network(n) for n in ("::/96", "::ffff:0:0:0/96", "64:ff9b::/96"))
# The local-use NAT64 prefix (RFC 8215) is not globally reachable, whatever IPv4 address it
# carries; the ipaddress of Python 3.11 calls it global.
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


def allowed(address: IPv4Address | IPv6Address) -> bool:
    """Whether the gateway may connect to ``address`` for a tenant: it must be global, and so
    must every IPv4 address it carries — ``[64:ff9b::7f00:1]`` is 127.0.0.1 to a NAT64 gateway,
    whatever ``ipaddress`` thinks of the IPv6 address itself."""
    if address in _NAT64_LOCAL:
        return False
    return address.is_global and all(inner.is_global for inner in embedded_ipv4(address))


def embedded_ipv4(address: IPv4Address | IPv6Address) -> list[IPv4Address]:
    """The IPv4 addresses an IPv6 address embeds: mapped, compatible, translated, NAT64, 6to4
    and both of Teredo's (server and client)."""
    if isinstance(address, IPv4Address):
        return []
    found = [a for a in (address.ipv4_mapped, address.sixtofour) if a is not None]
    found += address.teredo or ()
    if any(address in network for network in _LAST_32_BITS):
        found.append(IPv4Address(address.packed[12:]))
    return found
