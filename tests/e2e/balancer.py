#!/usr/bin/env python3
"""A loopback TCP balancer standing in for the chart's Service in the out-of-cluster e2e.

    balancer.py LISTEN BACKEND [BACKEND ...]      (each HOST:PORT)

Each connection goes to the next backend in turn; a backend that refuses the connection
(a stopped replica) is skipped, as kube-proxy skips a pod that is no longer ready. Bytes
are copied both ways untouched, so TLS ends at the replica. Used by scripts/e2e-cluster.sh.
"""

from __future__ import annotations

import asyncio
import itertools
import sys


def parse(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def main() -> None:
    listen, backends = parse(sys.argv[1]), [parse(b) for b in sys.argv[2:]]
    turn = itertools.cycle(range(len(backends)))

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        first = next(turn)
        for i in range(len(backends)):
            host, port = backends[(first + i) % len(backends)]
            try:
                backend_r, backend_w = await asyncio.wait_for(
                    asyncio.open_connection(host, port), timeout=2)
            except (OSError, asyncio.TimeoutError):
                continue
            await asyncio.gather(pipe(client_r, backend_w), pipe(backend_r, client_w))
            return
        client_w.close()

    server = await asyncio.start_server(handle, *listen)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    asyncio.run(main())
