//! `ringtail-loadgen`, the load generator. Its building blocks are in the library (partitioners,
//! latency histogram, open-loop schedule); the Kafka client and the `run`, `omb` and `matrix`
//! commands arrive with the rest of the "Load generator" issue. Until then this binary says so.

fn main() {
    eprintln!(
        "ringtail-loadgen: the run, omb and matrix commands are not built yet (see the Load generator issue); \
         for a first broker figure use: python3 scripts/bench_broker_kcat.py"
    );
    std::process::exit(2);
}
