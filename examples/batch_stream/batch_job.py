"""The batch job: a consumer in group `batch-processing-group` reading `batch-data-topic` with a
poll loop, committing what it processed, and stopping when it has caught up. Run it again and it
resumes after the last committed offset.

    python batch_job.py --bootstrap 127.0.0.1:9092
prints one JSON line: {"processed": N, "by_partition": {...}}.
"""

import argparse
import json
import time

from confluent_kafka import Consumer, KafkaError

TOPIC = "batch-data-topic"
GROUP = "batch-processing-group"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--idle-s", type=float, default=3.0, help="stop after this long without new messages")
    args = parser.parse_args()
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": GROUP,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
    })
    consumer.subscribe([TOPIC])
    processed = 0
    by_partition: dict[int, int] = {}
    last_message = time.monotonic()
    try:
        while time.monotonic() - last_message < args.idle_s:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error() is not None:
                if message.error().code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    continue
                raise SystemExit(f"consume error: {message.error()}")
            processed += 1
            by_partition[message.partition()] = by_partition.get(message.partition(), 0) + 1
            last_message = time.monotonic()
            if processed % 100 == 0:
                consumer.commit(asynchronous=False)
        if processed:
            consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    print(json.dumps({"processed": processed, "by_partition": by_partition}), flush=True)


if __name__ == "__main__":
    main()
