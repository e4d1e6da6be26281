#!/usr/bin/env python3
"""Slowloris against a running edge: how long do trickling connections live, what do they cost in
memory, and what does a normal client see meanwhile?

    python3 bench/slowloris.py --edge 127.0.0.1:8080 --pid <edge pid> [--conns 2000] [--every 5]

Opens --conns connections from 127.0.0.2-127.0.0.9 (spread over addresses, so the per-client cap
does not refuse them at once), each sending one byte of a request head every --every seconds, as
the attack in issue 11 did. Throughout, --viewers normal clients each ask for one cached object
every 10 ms (a new keep-alive connection every 50 requests). Prints when the edge closed the
attackers (seconds after their connect), the edge's RSS under normal traffic before the attack,
at its peak and --settle seconds after the last attacker was closed, and the normal clients'
latency percentiles during the attack.
"""

import argparse
import asyncio
import multiprocessing
import resource
import socket
import statistics
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def attacker(host, port, src, every, head, lifetimes, failures):
    loop = asyncio.get_running_loop()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    try:
        s.bind((src, 0))
        await loop.sock_connect(s, (host, port))
    except OSError as e:
        failures.append(str(e))
        s.close()
        return
    opened = time.monotonic()
    i = 0
    try:
        while True:
            if i < len(head):
                await loop.sock_sendall(s, head[i : i + 1])
                i += 1
            # Wait for the next byte's time, noticing a close meanwhile.
            try:
                data = await asyncio.wait_for(loop.sock_recv(s, 4096), timeout=every)
            except asyncio.TimeoutError:
                continue
            if not data:
                break
            # A 408 came: read to the close.
    except (ConnectionError, OSError):
        pass
    lifetimes.append(time.monotonic() - opened)
    s.close()


async def normal_client(host, port, path, stop, latencies, per_conn=50):
    """A viewer: one request every 10 ms, a new keep-alive connection every `per_conn` requests."""
    req = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    while not stop.is_set():
        reader, writer = await asyncio.open_connection(host, port)
        for _ in range(per_conn):
            if stop.is_set():
                break
            t = time.monotonic()
            writer.write(req)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            latencies.append((t, (time.monotonic() - t) * 1000))
            await asyncio.sleep(0.01)
        writer.close()


def viewers_process(host, port, path, n, conn, stop_flag):
    """The normal clients, in a process of their own so the attackers' event loop never delays
    them: sends back (start, ms) of every request when told to stop."""

    async def run():
        stop = asyncio.Event()
        lat = []
        tasks = [asyncio.create_task(normal_client(host, port, path, stop, lat)) for _ in range(n)]
        while not stop_flag.is_set():
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.gather(*tasks)
        return lat

    conn.send(asyncio.run(run()))


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--edge", default="127.0.0.1:8080")
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--conns", type=int, default=2000)
    ap.add_argument("--every", type=float, default=5.0)
    ap.add_argument("--path", default="/index.html")
    ap.add_argument("--settle", type=float, default=10.0, help="seconds of normal traffic after the last close before the final RSS")
    ap.add_argument("--viewers", type=int, default=4, help="normal clients, each a request every 10 ms")
    a = ap.parse_args()
    host, port = a.edge.rsplit(":", 1)
    port = int(port)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    # Normal traffic from a process of its own throughout; the baseline after 5 s of it.
    parent, child = multiprocessing.Pipe()
    stop_flag = multiprocessing.Event()
    viewers = multiprocessing.Process(
        target=viewers_process, args=(host, port, a.path, a.viewers, child, stop_flag)
    )
    viewers.start()
    await asyncio.sleep(5)
    base = rss_kib(a.pid)

    head = f"GET {a.path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: slowloris\r\nX-a: ".encode() + b"b" * 4000
    lifetimes, failures = [], []
    start = time.monotonic()
    tasks = [
        asyncio.create_task(
            attacker(host, port, f"127.0.0.{2 + i % 8}", a.every, head, lifetimes, failures)
        )
        for i in range(a.conns)
    ]
    peak = base
    while not all(t.done() for t in tasks):
        peak = max(peak, rss_kib(a.pid))
        await asyncio.sleep(0.2)
        if time.monotonic() - start > 120:
            break
    end = time.monotonic()
    all_closed = end - start
    await asyncio.sleep(a.settle)
    after = rss_kib(a.pid)
    stop_flag.set()
    samples = parent.recv()
    viewers.join()
    during = sorted(ms for t, ms in samples if start <= t <= end)
    for t in tasks:
        t.cancel()

    latencies = during
    pct = lambda p: latencies[min(len(latencies) - 1, int(len(latencies) * p))] if latencies else float("nan")
    print(f"attack: {a.conns} connections, one head byte every {a.every:g} s, from 8 addresses")
    print(f"connect failures: {len(failures)} {sorted(set(failures))[:3]}")
    if lifetimes:
        lifetimes.sort()
        print(
            f"closed by the edge: {len(lifetimes)}; lifetime min {lifetimes[0]:.2f} s, "
            f"median {statistics.median(lifetimes):.2f} s, max {lifetimes[-1]:.2f} s; "
            f"all closed {all_closed:.1f} s after the first connect"
        )
    print(
        f"edge RSS: baseline {base / 1024:.1f} MiB, peak {peak / 1024:.1f} MiB, "
        f"{a.settle:g} s of normal traffic after the last close {after / 1024:.1f} MiB "
        f"({(after - base) / base * 100:+.1f} % of baseline)"
    )
    print(
        f"{a.viewers} normal clients during the attack: {len(latencies)} requests, "
        f"p50 {pct(0.5):.2f} ms, p99 {pct(0.99):.2f} ms, max {latencies[-1] if latencies else float('nan'):.2f} ms"
    )


if __name__ == "__main__":
    asyncio.run(main())
