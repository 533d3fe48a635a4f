//! `ringtail-loadgen`: load-tests any Kafka-compatible broker. `run` drives one workload given by
//! flags; `omb` reads an OpenMessaging Benchmark workload file; `matrix` runs named scenarios
//! over disk layouts and brokers and writes `results/`.
#![forbid(unsafe_code)]

mod cli;
mod progress;

use anyhow::Result;
use clap::Parser;

fn main() -> Result<()> {
    let cli = cli::Cli::parse();
    cli::execute(cli)
}
