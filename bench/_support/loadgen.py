"""HTTP/1.1 load generator for the REST benchmarks (a helper, run as its own process).

A fixed number of keep-alive connections on loopback, each sending one GET, reading the
whole response (status line, headers, Content-Length body), then the next: closed loop,
no pipelining. Reconnects when the server closes a connection (hypercorn closes after
`keep_alive_max_requests`). Counts 200s and anything else separately; prints one JSON object.
Run (from bench/): ../.venv/bin/python -m _support.loadgen --port P --path /x [--header 'K: V']
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from _support.common import summary


async def _connection(host: str, port: int, request: bytes, stop_at: float, measure_from: float,
                      stats: dict[str, int], latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    clock = time.perf_counter
    while True:
        t0 = clock()
        if t0 >= stop_at:
            break
        writer.write(request)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            stats["reconnects"] += 1
            reader, writer = await asyncio.open_connection(host, port)
            continue
        status = int(head[9:12])
        length = 0
        close = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        if length:
            await reader.readexactly(length)
        t1 = clock()
        if t0 >= measure_from:
            if status == 200:
                stats["ok"] += 1
            else:
                stats["errors"] += 1
                stats[f"status_{status}"] = stats.get(f"status_{status}", 0) + 1
            latencies.append((t1 - t0) * 1e6)
        if close:
            writer.close()
            stats["reconnects"] += 1
            reader, writer = await asyncio.open_connection(host, port)
    writer.close()


async def run(host: str, port: int, path: str, headers: list[str], conns: int,
              warmup_s: float, seconds: float) -> dict[str, object]:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", *headers, "", ""]
    request = "\r\n".join(lines).encode()
    stats = {"ok": 0, "errors": 0, "reconnects": 0}
    latencies: list[float] = []
    start = time.perf_counter()
    measure_from = start + warmup_s
    stop_at = measure_from + seconds
    await asyncio.gather(*(
        _connection(host, port, request, stop_at, measure_from, stats, latencies)
        for _ in range(conns)
    ))
    # Responses still in flight at stop_at finished a little later; count the true window.
    window = max(time.perf_counter() - measure_from, seconds)
    return {
        "requests_per_s": round(stats["ok"] / window),
        "seconds": round(window, 3),
        "connections": conns,
        **stats,
        "latency_us": summary(latencies, 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--conns", type=int, default=16)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    a = parser.parse_args()
    if a.host != "127.0.0.1":
        parser.error("loopback only")
    result = asyncio.run(run(a.host, a.port, a.path, a.header, a.conns, a.warmup, a.seconds))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
