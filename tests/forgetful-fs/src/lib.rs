//! A FUSE filesystem for tests that forgets: it keeps every file in memory with a live and a
//! durable image, and on command "loses power", keeping only what fsync and directory fsync made
//! durable (see [`model`]). It also injects EIO on fsync and ENOSPC on write.
//!
//! It does not persist anything itself: the durable image stands in for the disk, and lives as
//! long as the process. It does not model hard links, symlinks, xattrs or locks (the kernel keeps
//! flock locks locally).
#![forbid(unsafe_code)]

pub mod content;
pub mod control;
pub mod fuse;
pub mod model;
