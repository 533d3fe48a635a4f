//! `ringtail users`: the credential store of a data dir, managed while no broker runs on it
//! (the first admin before the first start; a running broker is changed with
//! AlterUserScramCredentials instead, since it holds the store in memory).
#![forbid(unsafe_code)]

use std::io::BufRead;
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::config::UsersCommand;
use crate::sasl::scram::{ScramCredential, ScramHash};
use crate::sasl::store::CredentialStore;

pub fn run(command: &UsersCommand) -> Result<()> {
    match command {
        UsersCommand::Add {
            name,
            mechanism,
            password_stdin,
            iterations,
            data_dir,
        } => {
            assert!(*password_stdin, "clap requires --password-stdin");
            let hash = scram_hash(mechanism)?;
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("reading the password from standard input")?;
            let password = line.trim_end_matches(['\n', '\r']);
            if password.is_empty() {
                bail!("empty password on standard input");
            }
            let _lock = lock(data_dir)?;
            let mut store = CredentialStore::load(data_dir)?;
            let credential = ScramCredential::generate(hash, password, *iterations);
            store.upsert(name, hash, credential)?;
            store.save()?;
            println!("user {name}: {} credential saved", hash.mechanism());
            Ok(())
        }
        UsersCommand::Delete {
            name,
            mechanism,
            data_dir,
        } => {
            let hash = scram_hash(mechanism)?;
            let _lock = lock(data_dir)?;
            let mut store = CredentialStore::load(data_dir)?;
            if !store.remove(name, hash) {
                bail!("user {name} has no {} credential", hash.mechanism());
            }
            store.save()?;
            println!("user {name}: {} credential removed", hash.mechanism());
            Ok(())
        }
        UsersCommand::List { data_dir } => {
            let store = CredentialStore::load(data_dir)?;
            for (user, infos) in store.describe() {
                let mechanisms: Vec<String> = infos
                    .iter()
                    .map(|(hash, iterations)| {
                        format!("{}(iterations={iterations})", hash.mechanism())
                    })
                    .collect();
                println!("{user}\t{}", mechanisms.join(","));
            }
            Ok(())
        }
    }
}

fn scram_hash(mechanism: &str) -> Result<ScramHash> {
    ScramHash::from_mechanism(mechanism).with_context(|| {
        format!("--mechanism must be SCRAM-SHA-256 or SCRAM-SHA-512, not {mechanism}")
    })
}

/// The broker's data-dir lock: a running broker would overwrite this change with its own copy.
fn lock(data_dir: &Path) -> Result<std::fs::File> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(data_dir.join(".lock"))?;
    file.try_lock().map_err(|_| {
        anyhow::anyhow!(
            "{} is in use by a running ringtail: change users with kafka-configs \
             (AlterUserScramCredentials) instead",
            data_dir.display()
        )
    })?;
    Ok(file)
}
