#!/usr/bin/env python3
"""Fibonacci RPC client in pika, wire-compatible with the classic pika client.

Used by the interop tests: this client talks to fib-server (Rust).

Sends n = START .. START+COUNT-1 one after another to exchange EX with
ROUTING_KEY (correlation_id uuid4, reply_to = own exclusive server-named
queue, delivery_mode 2), checks each reply (body == fib(n), correlation_id,
content_type text/plain), then sends the bad bodies b'abc', b'-1', b'' and
checks that each reply carries the header error=invalid-request.

Prints one summary line "pika_client: ok=N failures=F".
Exit codes: 0 all good, 1 some check failed, 2 cannot connect,
5 a reply did not arrive within --timeout seconds.
"""

import argparse
import os
import sys
import time
import uuid

import pika

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2f"
BAD_BODIES = (b"abc", b"-1", b"")


def fib(n):
    """fib(0) = 0, fib(1) = 1, computed iteratively."""
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def short(body, limit=80):
    text = repr(body)
    return text if len(text) <= limit else text[:limit] + "...(%d bytes)" % len(body)


class ReplyTimeout(Exception):
    pass


class Client:
    def __init__(self, url, exchange, routing_key, timeout):
        self.exchange = exchange
        self.routing_key = routing_key
        self.timeout = timeout
        self.connection = pika.BlockingConnection(pika.URLParameters(url))
        self.channel = self.connection.channel()
        self.channel.exchange_declare(
            exchange=exchange, exchange_type="topic", durable=True
        )
        result = self.channel.queue_declare(
            queue="", exclusive=True, auto_delete=True
        )
        self.reply_queue = result.method.queue
        self.pending = None
        self.reply = None
        self.channel.basic_consume(
            queue=self.reply_queue, on_message_callback=self.on_reply, auto_ack=True
        )

    def on_reply(self, _ch, _method, props, body):
        # Replies with an unknown correlation id (late or foreign) are ignored.
        if self.pending is not None and props.correlation_id == self.pending:
            self.reply = (props, body)

    def call(self, body):
        """Publish one request and return (props, body) of its reply."""
        corr_id = str(uuid.uuid4())
        self.pending = corr_id
        self.reply = None
        self.channel.basic_publish(
            exchange=self.exchange,
            routing_key=self.routing_key,
            properties=pika.BasicProperties(
                reply_to=self.reply_queue,
                correlation_id=corr_id,
                delivery_mode=2,
            ),
            body=body,
        )
        deadline = time.monotonic() + self.timeout
        while self.reply is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ReplyTimeout(
                    "no reply to body %s within %gs" % (short(body), self.timeout)
                )
            self.connection.process_data_events(time_limit=min(left, 1.0))
        self.pending = None
        return corr_id, self.reply

    def close(self):
        try:
            self.connection.close()
        except pika.exceptions.AMQPError:
            pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("AMQP_URL", DEFAULT_URL))
    parser.add_argument("--exchange", default="logs_rpc")
    parser.add_argument("--routing-key", default="hello every one")
    parser.add_argument("--count", type=int, default=30)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for each reply"
    )
    args = parser.parse_args()
    if args.count < 0 or args.start < 0 or args.timeout <= 0:
        parser.error("--count and --start must be >= 0 and --timeout > 0")

    try:
        client = Client(args.url, args.exchange, args.routing_key, args.timeout)
    except Exception as exc:  # noqa: BLE001 - report any connection failure
        print("pika_client: cannot connect: %s" % type(exc).__name__, file=sys.stderr)
        return 2

    ok = 0
    failures = 0

    def fail(msg):
        nonlocal failures
        failures += 1
        print("pika_client: FAIL: " + msg, file=sys.stderr)

    try:
        for n in range(args.start, args.start + args.count):
            corr_id, (props, body) = client.call(str(n).encode("ascii"))
            errors = []
            expected = str(fib(n)).encode("ascii")
            if body != expected:
                errors.append("body %s, expected %s" % (short(body), short(expected)))
            if props.correlation_id != corr_id:
                errors.append(
                    "correlation_id %r, expected %r" % (props.correlation_id, corr_id)
                )
            if props.content_type != "text/plain":
                errors.append("content_type %r" % (props.content_type,))
            if errors:
                fail("n=%d: %s" % (n, "; ".join(errors)))
            else:
                ok += 1

        for bad in BAD_BODIES:
            corr_id, (props, body) = client.call(bad)
            error = (props.headers or {}).get("error")
            if isinstance(error, bytes):
                error = error.decode("utf-8", "replace")
            if error != "invalid-request":
                fail(
                    "bad body %s: header error=%r, expected 'invalid-request' (reply %s)"
                    % (short(bad), error, short(body))
                )
            elif props.correlation_id != corr_id:
                fail("bad body %s: correlation_id %r" % (short(bad), props.correlation_id))
            else:
                ok += 1
    except ReplyTimeout as exc:
        print("pika_client: timeout: %s" % exc, file=sys.stderr)
        print("pika_client: ok=%d failures=%d" % (ok, failures + 1), flush=True)
        client.close()
        return 5

    client.close()
    print("pika_client: ok=%d failures=%d" % (ok, failures), flush=True)
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
