#!/usr/bin/env python3
"""Fibonacci RPC server in pika, wire-compatible with the classic pika server.

Used by the interop tests: fib-client (Rust) talks to this server.

Topology: topic exchange EX (durable), queue Q (durable, not exclusive, not
auto-delete) bound with BINDING_KEY. Requests are consumed with prefetch 1 and
manual acks; each reply goes to the default exchange with routing key
reply_to, correlation_id copied, delivery_mode 2, content_type text/plain,
body fib(n) in ASCII decimal. The request is acked after the reply is
published. A bad body gets the reply 'invalid request' with the header
error=invalid-request.

Prints exactly "ready" on stdout once consuming; exits 0 on SIGTERM/SIGINT.
"""

import argparse
import os
import signal
import sys

import pika

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2f"
MAX_BODY = 64
WHITESPACE = b" \t\n\r\x0b\x0c"


def fib(n):
    """fib(0) = 0, fib(1) = 1, computed iteratively."""
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def parse_n(body):
    """Return n >= 0 for a valid request body, or None."""
    if len(body) > MAX_BODY:
        return None
    text = body.strip(WHITESPACE)
    if not text or not all(0x30 <= c <= 0x39 for c in text):
        return None
    return int(text.decode("ascii"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("AMQP_URL", DEFAULT_URL))
    parser.add_argument("--exchange", default="logs_rpc")
    parser.add_argument("--queue", default="task_queue")
    parser.add_argument("--binding-key", default="#")
    parser.add_argument(
        "--max-n",
        type=int,
        default=None,
        help="reply error=too-large above this n (default: no limit)",
    )
    args = parser.parse_args()

    stop = {"requested": False}

    def on_signal(signum, _frame):
        stop["requested"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    try:
        connection = pika.BlockingConnection(pika.URLParameters(args.url))
    except Exception as exc:  # noqa: BLE001 - report any connection failure
        print("pika_server: cannot connect: %s" % type(exc).__name__, file=sys.stderr)
        return 2
    channel = connection.channel()
    channel.queue_declare(
        queue=args.queue, durable=True, exclusive=False, auto_delete=False
    )
    channel.exchange_declare(
        exchange=args.exchange, exchange_type="topic", durable=True
    )
    channel.queue_bind(
        queue=args.queue, exchange=args.exchange, routing_key=args.binding_key
    )
    channel.basic_qos(prefetch_count=1)

    def on_request(ch, method, props, body):
        n = parse_n(body)
        headers = None
        if n is None:
            reply = b"invalid request"
            headers = {"error": "invalid-request"}
        elif args.max_n is not None and n > args.max_n:
            reply = ("n=%d is above the maximum %d" % (n, args.max_n)).encode()
            headers = {"error": "too-large"}
        else:
            reply = str(fib(n)).encode("ascii")
        if props.reply_to:
            ch.basic_publish(
                exchange="",
                routing_key=props.reply_to,
                properties=pika.BasicProperties(
                    correlation_id=props.correlation_id,
                    delivery_mode=2,
                    content_type="text/plain",
                    headers=headers,
                ),
                body=reply,
            )
        else:
            print("pika_server: request without reply_to dropped", file=sys.stderr)
        ch.basic_ack(delivery_tag=method.delivery_tag)

    consumer_tag = channel.basic_consume(
        queue=args.queue, on_message_callback=on_request, auto_ack=False
    )
    print("ready", flush=True)

    try:
        while not stop["requested"]:
            connection.process_data_events(time_limit=0.2)
        channel.basic_cancel(consumer_tag)
        connection.close()
    except pika.exceptions.AMQPError as exc:
        print("pika_server: connection lost: %r" % exc, file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
