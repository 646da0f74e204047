"""A real S3 endpoint on loopback for tests and benchmarks: a moto server, bucket helpers, and
`FaultProxy`, which puts object-store latency and failures in front of it.

moto and boto3 come with the `test` extra; they are imported only when a server is started.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import random
import socket
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

REGION = "us-east-1"
# moto accepts any credentials; these never leave loopback.
TEST_CREDENTIALS = {"key": "testing", "secret": "testing"}


def start_moto_server() -> tuple[Any, str]:
    """Start moto's S3 server in a thread on 127.0.0.1 and a free port; returns (server, endpoint URL)."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one INFO line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


def s3_storage_options(endpoint_url: str) -> dict[str, Any]:
    """fsspec storage options that reach the S3 endpoint at `endpoint_url` through s3fs."""
    return {"endpoint_url": endpoint_url, **TEST_CREDENTIALS, "client_kwargs": {"region_name": REGION}}


def s3_client(endpoint_url: str) -> Any:
    """A boto3 S3 client for the endpoint (to create buckets and put objects behind s3fs's back)."""
    import boto3

    return boto3.client("s3", endpoint_url=endpoint_url, region_name=REGION,
                        aws_access_key_id=TEST_CREDENTIALS["key"], aws_secret_access_key=TEST_CREDENTIALS["secret"])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_SLOW_DOWN = (b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>"
              b"<Message>Please reduce your request rate.</Message></Error>")


class FaultProxy:
    """An HTTP/1.1 reverse proxy on 127.0.0.1 that makes a loopback server behave like a remote
    object store: every request waits `latency` seconds before it is forwarded (first-byte
    latency), a `fail_rate` fraction is answered 503 SlowDown, a `reset_rate` fraction has
    its connection reset, a `truncate_rate` fraction of responses with a body lose the second
    half of it (the connection closes after the first half, under the full Content-Length),
    and a `spike_rate` fraction waits `spike_seconds` more (a latency spike), all drawn from
    `random.Random(seed)`; with `fail_first=n`, each distinct request (method, target, range)
    is answered 503 the first n times it comes. `counts` tallies what was injected.

    Use as a context manager, or `start()` / `stop()`; `url` is the endpoint to give clients.
    """

    def __init__(self, upstream: str, *, latency: float = 0.0, fail_rate: float = 0.0, reset_rate: float = 0.0,
                 fail_first: int = 0, seed: int = 0, truncate_rate: float = 0.0, spike_rate: float = 0.0,
                 spike_seconds: float = 1.0) -> None:
        host_port = upstream.split("://", 1)[-1].rstrip("/")
        self.upstream_host, port = host_port.rsplit(":", 1)
        self.upstream_port = int(port)
        self.latency, self.fail_rate, self.reset_rate = latency, fail_rate, reset_rate
        self.truncate_rate, self.spike_rate, self.spike_seconds = truncate_rate, spike_rate, spike_seconds
        self.fail_first, self.seen = fail_first, Counter()
        self.rng = random.Random(seed)
        # max_in_flight: the most requests handled at once (waiting out the latency or forwarded)
        self.counts = {"requests": 0, "failed": 0, "reset": 0, "truncated": 0, "spiked": 0, "max_in_flight": 0}
        self.in_flight = 0
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.AbstractServer | None = None

    def start(self) -> FaultProxy:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", self.port), self._loop).result()
        return self

    def stop(self) -> None:
        async def shutdown() -> None:  # close every connection while the loop still runs
            if self._server is not None:
                self._server.close()
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: list[asyncio.StreamWriter | asyncio.StreamReader] = []  # [reader, writer] once connected
        try:
            while True:
                head, body = await _read_message(reader, writer, request=True)
                if head is None:
                    return
                self.counts["requests"] += 1
                self.in_flight += 1
                self.counts["max_in_flight"] = max(self.counts["max_in_flight"], self.in_flight)
                try:
                    keep_open = await self._answer(head, body, writer, upstream)
                finally:
                    self.in_flight -= 1
                if not keep_open:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return
        finally:
            for stream in (writer, *upstream[1:]):
                if not stream.is_closing():
                    stream.close()

    async def _answer(self, head: bytes, body: bytes, writer: asyncio.StreamWriter, upstream: list) -> bool:
        """Answer one request: reset, 503, or forward it (over `upstream`, opened on first use).
        Returns whether the client connection stays open."""
        fate, truncate, spike = self.rng.random(), self.rng.random(), self.rng.random()
        if fate < self.reset_rate:
            self.counts["reset"] += 1
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            writer.transport.abort()  # with SO_LINGER 0: an RST, as from a dropped connection
            return False
        if spike < self.spike_rate:
            self.counts["spiked"] += 1
        await asyncio.sleep(self.latency + (self.spike_seconds if spike < self.spike_rate else 0.0))
        request_line, _, rest = head.partition(b"\r\n")
        byte_range = next((line for line in rest.lower().split(b"\r\n") if line.startswith(b"range:")), b"")
        self.seen[request_line + byte_range] += 1
        if fate < self.reset_rate + self.fail_rate or self.seen[request_line + byte_range] <= self.fail_first:
            self.counts["failed"] += 1
            # An answer to HEAD has no body: the client would read it as the next response.
            body = b"" if head.startswith(b"HEAD ") else _SLOW_DOWN
            writer.write(b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(_SLOW_DOWN) + body)
            await writer.drain()
            return True
        method = head.split(b" ", 1)[0]
        for _ in range(2):  # once more on a fresh connection if the server closed a kept-alive one
            if not upstream:
                upstream.extend(await asyncio.open_connection(self.upstream_host, self.upstream_port))
            upstream[1].write(head + body)
            await upstream[1].drain()
            response_head, response_body = await _read_message(upstream[0], None, request=False, method=method)
            if response_head is not None:
                break
            upstream.pop().close()
            upstream.clear()
        if response_head is None:
            return False
        if truncate < self.truncate_rate and len(response_body) > 1:
            self.counts["truncated"] += 1
            writer.write(response_head + response_body[:len(response_body) // 2])
            await writer.drain()
            writer.transport.abort()  # the body ends early, under its full Content-Length
            return False
        writer.write(response_head + response_body)
        await writer.drain()
        if b"\r\nconnection: close" in response_head.lower():
            upstream.pop().close()
            upstream.clear()
        return True


async def _read_message(reader: asyncio.StreamReader, client: asyncio.StreamWriter | None, *, request: bool,
                        method: bytes = b"GET") -> tuple[bytes | None, bytes]:
    """One HTTP/1.1 message: (head, body), body re-encoded as sent; (None, b"") at EOF.
    A request that expects `100 Continue` gets it here and loses the header."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None, b""
    lines = head.split(b"\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(b":") for line in lines[1:] if line)}
    if request and headers.get(b"expect", b"").lower() == b"100-continue" and client is not None:
        client.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        head = b"\r\n".join(line for line in lines if not line.lower().startswith(b"expect:"))
    status = b"" if request else lines[0].split(b" ")[1]
    if method == b"HEAD" or status in (b"204", b"304") or status.startswith(b"1"):
        return head, b""
    if b"content-length" in headers:
        return head, await reader.readexactly(int(headers[b"content-length"]))
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        chunks = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            chunk = await reader.readexactly(int(size_line.split(b";")[0], 16) + 2)
            chunks.append(size_line + chunk)
            if int(size_line.split(b";")[0], 16) == 0:
                return head, b"".join(chunks)
    return head, b"" if request else await reader.read()


def start_fault_proxy(upstream: str, **options: Any) -> tuple[FaultProxy, str]:
    """Start a `FaultProxy` (options as its keyword arguments); returns (proxy, url)."""
    proxy = FaultProxy(upstream, **options).start()
    return proxy, proxy.url


def _serve_child(factory: Callable[[], tuple[Any, str]], pipe: Any) -> None:
    _, url = factory()
    pipe.send(url)
    threading.Event().wait()  # serve until the parent terminates this process


def serve_in_subprocess(factory: Callable[[], tuple[Any, str]]) -> tuple[multiprocessing.Process, str]:
    """Run a server that `factory()` starts (returning (server, url)) in a child process, so
    that it has its own interpreter lock; returns (process, url). Terminate the process to stop it."""
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.get_context("spawn").Process(target=_serve_child, args=(factory, child), daemon=True)
    process.start()
    if not parent.poll(60):
        process.terminate()
        raise RuntimeError("the server process did not start within 60 s")
    return process, parent.recv()
