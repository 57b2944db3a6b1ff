"""A local, loopback-only emulation of the Alibaba Cloud services alicertd talks to.

Alidns, CDN and API Gateway RPC APIs (signature 1.0, RAM permissions, faults), authoritative
DNS for the emulated zones, a TLS edge serving the bound certificates, ECS instance metadata
credentials, and an admin API. It shares no code with the daemon, the providers or the Alibaba
SDK on purpose: a bug common to client and server would otherwise verify itself.

    from sandbox import Sandbox
    with Sandbox() as sb:          # the bundled demo fixture, free ports
        print(sb.api_url, sb.dns_port, sb.edge_port)
"""

from .app import Sandbox, SandboxError
from .fixture import FixtureError, demo_fixture_path

__all__ = ["Sandbox", "SandboxError", "FixtureError", "demo_fixture_path"]
