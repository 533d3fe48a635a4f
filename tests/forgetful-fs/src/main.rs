//! `forgetful-fs MOUNTPOINT --control SOCKET`: mounts the forgetful filesystem (see the crate
//! doc) and serves its control channel until `quit`. Needs root (it mounts through /dev/fuse
//! directly, without fusermount).
#![forbid(unsafe_code)]

use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use clap::Parser;
use forgetful_fs::{control, fuse::ForgetfulFs, model::Model};
use fuser::{Config, MountOption};

#[derive(Parser)]
#[command(about = "A FUSE filesystem that forgets what was not fsynced when told to lose power")]
struct Args {
    /// Where to mount (an existing empty directory).
    mountpoint: PathBuf,
    /// The control channel's Unix socket (created; removed first if it exists).
    #[arg(long)]
    control: PathBuf,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let model = Arc::new(Mutex::new(Model::new()));
    let _ = std::fs::remove_file(&args.control);
    let listener = UnixListener::bind(&args.control)
        .with_context(|| format!("binding {}", args.control.display()))?;
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("forgetful".into()),
        MountOption::Subtype("forgetful".into()),
        MountOption::RW,
    ];
    let session = fuser::spawn_mount(
        ForgetfulFs::new(Arc::clone(&model)),
        &args.mountpoint,
        &config,
    )
    .with_context(|| format!("mounting on {}", args.mountpoint.display()))?;
    eprintln!(
        "forgetful-fs: mounted on {}, control on {}",
        args.mountpoint.display(),
        args.control.display()
    );
    control::serve(&listener, &model);
    drop(session);
    let _ = std::fs::remove_file(&args.control);
    Ok(())
}
