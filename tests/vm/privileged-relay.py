#!/usr/bin/env python3
"""Relays TCP connections from 127.0.0.1:LISTEN to 127.0.0.1:TARGET, each leaving from a
privileged source port (below 1024; run as root).

The nfs-vm guest's kernel NFS client sends from a privileged port, as Linux does, but
QEMU's user-mode network (slirp) re-sends the guest's connections from ordinary host
ports, losing that. The relay puts it back, so the client daemon runs with its default
(`require_privileged_port = true`) while the guest's kernel client mounts it.

    tests/vm/privileged-relay.py LISTEN TARGET
"""
import asyncio
import errno
import socket
import sys


def privileged_socket(target_port):
    """A socket bound to a free port below 1024 and connected (blocking) to the target."""
    for port in range(1023, 600, -1):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", port))
            s.connect(("127.0.0.1", target_port))
            s.setblocking(False)
            return s
        except OSError as e:
            s.close()
            if e.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL):
                continue
            raise
    raise OSError("no free privileged source port")


async def pump(reader, writer):
    try:
        while True:
            data = await reader.read(1 << 16)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            writer.close()
        except OSError:
            pass


async def main(listen, target):
    async def handle(guest_reader, guest_writer):
        try:
            sock = await asyncio.get_running_loop().run_in_executor(None, privileged_socket, target)
            daemon_reader, daemon_writer = await asyncio.open_connection(sock=sock)
        except OSError as e:
            print(f"privileged-relay: connecting to {target}: {e}", file=sys.stderr, flush=True)
            guest_writer.close()
            return
        await asyncio.gather(pump(guest_reader, daemon_writer), pump(daemon_reader, guest_writer))

    server = await asyncio.start_server(handle, "127.0.0.1", listen)
    print(f"privileged-relay: 127.0.0.1:{listen} -> 127.0.0.1:{target}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
