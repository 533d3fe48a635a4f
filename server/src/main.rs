//! `ringtail`, the broker. The Kafka wire protocol and the shard runtime arrive with the
//! "Broker" issue; until then this binary only says so, and the engine's demo
//! (`cargo run --release -p ringtail-engine --example demo`) is the way to run Ringtail.

fn main() {
    eprintln!(
        "ringtail: the Kafka protocol front end is not built yet (see the Broker issue).\n\
         Run the storage engine demo instead: cargo run --release -p ringtail-engine --example demo"
    );
    std::process::exit(2);
}
