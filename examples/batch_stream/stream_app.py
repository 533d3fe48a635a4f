"""The stream job, as the classic Kafka Streams topology: read `stream-data-topic`, keep values
containing `important-data`, upper-case them, write them to `output-topic`. Written with
quixstreams (Kafka Streams is Java; this is what Python users pick), unchanged: it creates its own
topics and commits through the consumer group protocol.

    python stream_app.py --bootstrap 127.0.0.1:9092 --state-dir ./state
Stops cleanly (committing) on SIGINT or SIGTERM, and resumes from its committed offsets.
"""

import argparse

from quixstreams import Application


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--state-dir", default="./state")
    args = parser.parse_args()
    app = Application(
        broker_address=args.bootstrap,
        consumer_group="stream-app",
        auto_offset_reset="earliest",
        state_dir=args.state_dir,
        commit_interval=1.0,
    )
    source = app.topic("stream-data-topic", value_deserializer="string", key_deserializer="string")
    sink = app.topic("output-topic", value_serializer="string", key_serializer="string")
    sdf = app.dataframe(source)
    sdf = sdf.filter(lambda value: "important-data" in value)
    sdf = sdf.apply(lambda value: value.upper())
    sdf.to_topic(sink)
    app.run()


if __name__ == "__main__":
    main()
