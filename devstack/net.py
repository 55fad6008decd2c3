"""Loopback ports: finding a free one, and telling whether something listens."""

import asyncio
import random
import socket
from pathlib import Path

# Where the kernel takes the ports of outgoing connections and of binds to port 0 (Linux
# says; otherwise IANA's dynamic range, which macOS uses).
LOCAL_PORT_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST = 15000
# Not the module's generator: a test that seeds that one would make two processes pick alike.
_PICK = random.SystemRandom()


def _kernel_range() -> tuple[int, int]:
    try:
        low, high = LOCAL_PORT_RANGE.read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 49152, 65535


def free_port() -> int:
    """A port nothing listens on now, for a server started next.

    Taken below the kernel's own range: a port the kernel handed out there may be handed out
    again (to a connection's source port, or to another process's bind to port 0) before our
    server binds it, and two test processes starting stacks at once made that happen."""
    low, _ = _kernel_range()
    candidates = range(LOWEST, low) if low - LOWEST >= 1000 else range(0)
    for port in _PICK.sample(candidates, min(len(candidates), 50)):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        _, writer = await asyncio.open_connection(host, port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True
