//! DescribeUserScramCredentials and AlterUserScramCredentials (KIP-554): SASL users managed
//! online, as `kafka-configs --entity-type users` and the admin clients do it.
//!
//! The client sends a salted password (never the password); the broker keeps only the stored and
//! server keys derived from it. A change is saved (temp-fsync-rename) before it is answered, and
//! becomes visible to logins only once saved.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use tracing::{error, info};

use super::{
    code, error_message, str_bytes, Operation, RequestContext, RequestError, Resource, Response,
};
use crate::sasl::scram::{ScramCredential, ScramHash, ITERATIONS_MAX, ITERATIONS_MIN};
use crate::shard::ShardContext;

pub fn describe(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<Response, RequestError> {
    let describe: DescribeUserScramCredentialsRequest = request.decode(body)?;
    if !request.allows(context, Operation::Describe, Resource::cluster()) {
        let denied = code(ResponseError::ClusterAuthorizationFailed);
        let response = DescribeUserScramCredentialsResponse::default().with_error_code(denied);
        return Ok(request.frame(&response));
    }
    let store = context
        .sasl
        .store
        .read()
        .expect("the credential store lock is not poisoned");
    let info = |infos: Vec<(ScramHash, u32)>| {
        infos
            .into_iter()
            .map(|(hash, iterations)| {
                CredentialInfo::default()
                    .with_mechanism(hash.wire_type())
                    .with_iterations(iterations as i32)
            })
            .collect()
    };
    let results = match describe.users.filter(|users| !users.is_empty()) {
        None => store
            .describe()
            .map(|(user, infos)| {
                DescribeUserScramCredentialsResult::default()
                    .with_user(str_bytes(user))
                    .with_credential_infos(info(infos))
            })
            .collect(),
        Some(users) => users
            .iter()
            .map(|wanted| {
                let found = store
                    .describe()
                    .find(|(user, _)| *user == wanted.name.as_str());
                let result =
                    DescribeUserScramCredentialsResult::default().with_user(wanted.name.clone());
                match found {
                    Some((_, infos)) => result.with_credential_infos(info(infos)),
                    None => result
                        .with_error_code(code(ResponseError::ResourceNotFound))
                        .with_error_message(Some(error_message(
                            "no SCRAM credential for this user",
                        ))),
                }
            })
            .collect(),
    };
    Ok(request.frame(&DescribeUserScramCredentialsResponse::default().with_results(results)))
}

/// One requested change, checked.
enum Change {
    Upsert(ScramHash, ScramCredential),
    Delete(ScramHash),
}

pub fn alter(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<Response, RequestError> {
    let alter: AlterUserScramCredentialsRequest = request.decode(body)?;
    // Per user: its changes, or the first reason to refuse them all.
    let mut users: BTreeMap<String, Result<Vec<Change>, (ResponseError, String)>> = BTreeMap::new();
    let mut push = |name: &str, change: Result<Change, (ResponseError, String)>| {
        let entry = users
            .entry(name.to_string())
            .or_insert_with(|| Ok(Vec::new()));
        match (entry.as_mut(), change) {
            (Ok(changes), Ok(change)) => changes.push(change),
            (Ok(_), Err(refusal)) => *entry = Err(refusal),
            (Err(_), _) => {}
        }
    };
    for deletion in &alter.deletions {
        push(
            &deletion.name,
            mechanism(deletion.mechanism).map(Change::Delete),
        );
    }
    for upsertion in &alter.upsertions {
        let checked = mechanism(upsertion.mechanism).and_then(|hash| {
            check_upsertion(
                hash,
                upsertion.iterations,
                &upsertion.salt,
                &upsertion.salted_password,
            )
            .map(|credential| Change::Upsert(hash, credential))
        });
        push(&upsertion.name, checked);
    }
    if !request.allows(context, Operation::Alter, Resource::cluster()) {
        for outcome in users.values_mut() {
            let denied = ResponseError::ClusterAuthorizationFailed;
            *outcome = Err((denied, "not authorized to alter the cluster".to_string()));
        }
    }
    let _writes = context
        .sasl
        .store_writes
        .lock()
        .expect("the credential store write lock is not poisoned");
    let mut next = context
        .sasl
        .store
        .read()
        .expect("the credential store lock is not poisoned")
        .clone();
    let mut outcomes: Vec<(String, Option<(ResponseError, String)>)> = Vec::new();
    for (user, changes) in users {
        let outcome = changes.and_then(|changes| apply(&mut next, &user, changes));
        outcomes.push((user, outcome.err()));
    }
    let applied = outcomes.iter().any(|(_, refusal)| refusal.is_none());
    if applied {
        if let Err(err) = next.save() {
            error!(%err, "saving the credential store failed; the change is not applied");
            for (_, refusal) in outcomes.iter_mut().filter(|(_, r)| r.is_none()) {
                *refusal = Some((
                    ResponseError::UnknownServerError,
                    "the credential store could not be saved".to_string(),
                ));
            }
        } else {
            *context
                .sasl
                .store
                .write()
                .expect("the credential store lock is not poisoned") = next;
            let changed: Vec<&str> = outcomes
                .iter()
                .filter(|(_, r)| r.is_none())
                .map(|(u, _)| u.as_str())
                .collect();
            info!(users = ?changed, "SCRAM credentials changed");
        }
    }
    let results = outcomes
        .into_iter()
        .map(|(user, refusal)| {
            let result = AlterUserScramCredentialsResult::default().with_user(str_bytes(&user));
            match refusal {
                None => result,
                Some((error, message)) => result
                    .with_error_code(code(error))
                    .with_error_message(Some(error_message(&message))),
            }
        })
        .collect();
    Ok(request.frame(&AlterUserScramCredentialsResponse::default().with_results(results)))
}

fn mechanism(wire: i8) -> Result<ScramHash, (ResponseError, String)> {
    ScramHash::from_wire_type(wire).ok_or_else(|| {
        (
            ResponseError::UnsupportedSaslMechanism,
            format!("unknown SCRAM mechanism {wire}"),
        )
    })
}

fn check_upsertion(
    hash: ScramHash,
    iterations: i32,
    salt: &Bytes,
    salted_password: &Bytes,
) -> Result<ScramCredential, (ResponseError, String)> {
    let unacceptable = |message: String| (ResponseError::UnacceptableCredential, message);
    let iterations = u32::try_from(iterations)
        .ok()
        .filter(|i| (ITERATIONS_MIN..=ITERATIONS_MAX).contains(i))
        .ok_or_else(|| {
            unacceptable(format!(
                "iterations must be {ITERATIONS_MIN}..={ITERATIONS_MAX}"
            ))
        })?;
    if salt.is_empty() || salt.len() > 1024 {
        return Err(unacceptable("the salt must be 1..=1024 bytes".to_string()));
    }
    // The salted password keys an HMAC, so any length derives the stored and server keys; Kafka
    // (ScramControlManager.validateUpsertion) checks only the iterations, and kafka-go's
    // TestAlterUserScramCredentials sends an 18-byte one. An empty one is no credential.
    if salted_password.is_empty() {
        return Err(unacceptable(format!(
            "a {} salted password is not empty",
            hash.mechanism()
        )));
    }
    Ok(ScramCredential::from_salted(
        hash,
        salted_password,
        salt.to_vec(),
        iterations,
    ))
}

/// Applies one user's changes, all or none: checked first, so nothing fails half-way.
fn apply(
    store: &mut crate::sasl::store::CredentialStore,
    user: &str,
    changes: Vec<Change>,
) -> Result<(), (ResponseError, String)> {
    let mut seen = Vec::with_capacity(changes.len());
    for change in &changes {
        let hash = match change {
            Change::Upsert(hash, _) | Change::Delete(hash) => *hash,
        };
        if seen.contains(&hash) {
            return Err((
                ResponseError::DuplicateResource,
                format!("{} of {user} named twice", hash.mechanism()),
            ));
        }
        seen.push(hash);
        if matches!(change, Change::Delete(_)) && store.get(user, hash).is_none() {
            return Err((
                ResponseError::ResourceNotFound,
                format!("no {} credential for {user}", hash.mechanism()),
            ));
        }
    }
    for change in changes {
        match change {
            Change::Upsert(hash, credential) => store
                .upsert(user, hash, credential)
                .map_err(|err| (ResponseError::UnacceptableCredential, err.to_string()))?,
            Change::Delete(hash) => {
                let removed = store.remove(user, hash);
                assert!(removed, "checked above");
            }
        }
    }
    Ok(())
}
