//! `ringtail`, the broker: the Kafka wire protocol over Ringtail's thread-per-core io_uring
//! storage engine. One shard per core, each with its own io_uring, its own listener socket
//! (SO_REUSEPORT) and the partitions it owns; requests for another shard's partition travel by
//! message passing. See docs/ARCHITECTURE.md.

mod api;
mod zero_copy;

fn main() {
    eprintln!(
        "ringtail: the Kafka protocol front end is not built yet (see the Broker issue).\n\
         Run the storage engine demo instead: cargo run --release -p ringtail-engine --example demo"
    );
    std::process::exit(2);
}
