"""Loads a text file into a topic, one message per line (key = line number), and waits until every
line is acknowledged.

    python load_file.py --bootstrap 127.0.0.1:9092 --topic stream-data-topic FILE
"""

import argparse

from confluent_kafka import Producer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--first-key", type=int, default=0)
    parser.add_argument("file")
    args = parser.parse_args()
    producer = Producer({"bootstrap.servers": args.bootstrap, "acks": "all"})
    failures = []

    def report(err, _message):
        if err is not None:
            failures.append(str(err))

    with open(args.file, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=args.first_key):
            producer.produce(args.topic, key=str(number), value=line.rstrip("\n"), on_delivery=report)
            producer.poll(0)
    if producer.flush(30) != 0 or failures:
        raise SystemExit(f"not all lines were acknowledged: {failures[:5]}")
    print(f"loaded {args.file} into {args.topic}", flush=True)


if __name__ == "__main__":
    main()
