//! `ringtail`, the broker: the Kafka wire protocol over Ringtail's thread-per-core io_uring
//! storage engine. One shard per core, each with its own io_uring, its own listener socket
//! (SO_REUSEPORT) and the partitions it owns; requests for another shard's partition travel by
//! message passing. See docs/ARCHITECTURE.md.
#![deny(unsafe_code)]

use anyhow::Result;
use ringtail_server::{broker, cli_groups, cli_users, config, large_alloc};

#[global_allocator]
static ALLOCATOR: large_alloc::LargeAllocReserveOnly = large_alloc::LargeAllocReserveOnly;

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: logs redirected to files stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = config::Args::load()?;
    match &args.command {
        Some(config::Command::Groups { bootstrap, group }) => {
            cli_groups::run(bootstrap, group.as_deref())
        }
        Some(config::Command::Users { action }) => cli_users::run(action),
        None => broker::run(args),
    }
}
