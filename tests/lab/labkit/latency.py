"""A transport that costs time: a TCP proxy on loopback that delays each request a client sends.

``LatencyProxy(target_port, delay, bandwidth=None)`` listens on 127.0.0.1 and forwards every connection to
``target_port`` (an S3 server of labkit.s3servers, say). A burst of bytes from the client that follows a quiet moment
(a new request on a kept-alive HTTP connection) waits ``delay`` seconds before it is forwarded; the rest of a request
that streams on (a large body) passes at once. So each request costs about ``delay`` more, as an object store across
a WAN would, whatever its size. With ``bandwidth`` (bytes per second, per connection) the replies are paced too, so
reading a large object takes time as well. The client sees an ordinary endpoint (``proxy.endpoint``): nothing in the product
knows. Used by the cancel tests (a prune or a validation that lasts long enough to be cancelled in its middle).

Thread-safety: the proxy runs its own asyncio loop on a daemon thread; ``stop()`` may be called from any thread.
"""
import asyncio
import socket
import threading
import time

__all__ = ["LatencyProxy"]

# a client's bytes that come later than this after its previous bytes begin a new request
_QUIET = 0.002
_BUFFER = 1 << 16


class LatencyProxy:
    """See the module docstring. A context manager (stops on exit)."""

    def __init__(self, target_port, delay, bandwidth=None, target_host="127.0.0.1"):
        self.target = (target_host, target_port)
        self.delay = float(delay)
        self.bandwidth = bandwidth
        self.requests = 0
        self._loop = asyncio.new_event_loop()
        self._server = None
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(listener,), name="latency-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the latency proxy did not start")

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d" % self.port

    def _run(self, listener):
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._connection, sock=listener))
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    async def _shutdown(self):
        self._server.close()
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _connection(self, client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(self._pump(client_reader, server_writer, self.delay),
                             self._pump(server_reader, client_writer, 0.0, self.bandwidth), return_exceptions=True)

    async def _pump(self, reader, writer, delay, bandwidth=None):
        last = 0.0
        try:
            while True:
                data = await reader.read(_BUFFER)
                if not data:
                    break
                if delay and time.monotonic() - last > _QUIET:
                    self.requests += 1
                    await asyncio.sleep(delay)
                writer.write(data)
                await writer.drain()
                if bandwidth:
                    await asyncio.sleep(len(data) / bandwidth)
                last = time.monotonic()
        finally:
            writer.close()

    def stop(self):
        """Close the listener and every connection, then end the thread (idempotent)."""
        if self._thread.is_alive() and not self._loop.is_closed():
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()
