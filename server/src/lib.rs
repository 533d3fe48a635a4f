//! The broker as a library: the `ringtail` binary (main.rs) runs it, and the fuzz targets (fuzz/)
//! drive its decoders through [`fuzzing`]. See docs/ARCHITECTURE.md.
#![deny(unsafe_code)]

mod acl;
mod api;
pub mod broker;
mod broker_configs;
pub mod cli_groups;
pub mod cli_log_dirs;
pub mod cli_users;
pub mod config;
mod config_expiry;
mod config_node;
mod config_security;
mod configs;
mod connection;
mod coordinators;
mod disks;
mod durable_file;
mod frame_pool;
pub mod fuzzing;
#[cfg(test)]
mod fuzzing_corpus;
mod group;
mod group_configs;
mod histogram;
// Holds `unsafe` blocks, each with its `// SAFETY:` comment; every other module forbids it.
#[allow(unsafe_code)]
pub mod large_alloc;
mod limits;
mod listeners;
mod metadata;
mod metrics;
mod open_files;
mod placement;
mod produce_stages;
pub mod protocol;
mod quotas;
mod residency;
mod sasl;
mod settings;
mod shard;
mod shutdown;
#[cfg(test)]
mod test_bytes;
// Holds `unsafe` blocks, each with its `// SAFETY:` comment; every other module forbids it.
#[allow(unsafe_code)]
mod thread_slice;
mod tls;
mod topics;
mod transport;
mod txn;
// Holds `unsafe` blocks, each with its `// SAFETY:` comment; every other module forbids it.
#[allow(unsafe_code)]
mod zero_copy;

/// The library's own unit tests run with the broker's allocator, as the binary does: the large
/// allocation tests rely on it.
#[cfg(test)]
#[global_allocator]
static TEST_ALLOCATOR: large_alloc::LargeAllocReserveOnly = large_alloc::LargeAllocReserveOnly;
