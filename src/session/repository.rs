//! PLACEHOLDER (lead): the request/reply types of the fleet repository
//! client; the Redis client itself lands from the s2-repo branch, which
//! replaces this file with the same types.

/// Kinds of records in the repository (key letters t, c, a).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    Session,
    Conn,
    ConnAlias,
}

pub enum Op {
    Take { kind: RecordKind, id: Vec<u8> },
    Put { kind: RecordKind, id: Vec<u8>, value: Vec<u8>, ttl: std::time::Duration },
    Del { kind: RecordKind, id: Vec<u8> },
}

pub struct Request {
    pub tag: u64,
    pub op: Op,
    pub reply: Option<crossbeam_channel::Sender<Reply>>,
}

pub struct Reply {
    pub tag: u64,
    pub outcome: Outcome,
    pub latency: std::time::Duration,
}

pub enum Outcome {
    Taken(Vec<u8>),
    Missing,
    Refused,
    Unavailable,
    Stored,
    NotStored(Vec<u8>),
}

/// PLACEHOLDER: replaced by the s2-repo branch.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepositoryConfig {
    pub url: String,
}
