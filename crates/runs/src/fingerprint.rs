//! The fingerprint of a run specification, and the keys on which two specifications differ.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::spec::RunSpec;

/// The SHA-256 of a specification's canonical JSON (fields in declaration order, floats written
/// to round-trip exactly), in hexadecimal. Equal specifications have equal fingerprints on every
/// machine; any difference in any setting changes it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// The fingerprint of `spec`.
    pub fn of(spec: &RunSpec) -> Self {
        let canonical = serde_json::to_vec(spec).expect("a run specification serialises");
        let digest = Sha256::digest(&canonical);
        Fingerprint(digest.iter().map(|byte| format!("{byte:02x}")).collect())
    }

    /// The first 12 hexadecimal digits, for messages.
    pub fn short(&self) -> &str {
        &self.0[..self.0.len().min(12)]
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One key on which two specifications differ.
#[derive(Clone, Debug, PartialEq)]
pub struct Difference {
    /// The key, as a dotted path (`train.epochs`, `scheduler.t_max`, `optimizer.betas[1]`).
    pub key: String,
    /// Its value in the first specification (`None`: absent there).
    pub old: Option<Value>,
    /// Its value in the second.
    pub new: Option<Value>,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: &Option<Value>| v.as_ref().map_or("(absent)".into(), Value::to_string);
        write!(f, "{}: {} → {}", self.key, show(&self.old), show(&self.new))
    }
}

/// The keys on which `old` and `new` differ, in the order of the specification's fields.
pub fn differences(old: &RunSpec, new: &RunSpec) -> Vec<Difference> {
    let as_value = |spec: &RunSpec| serde_json::to_value(spec).expect("a spec serialises");
    let mut found = Vec::new();
    compare("", Some(&as_value(old)), Some(&as_value(new)), &mut found);
    found
}

fn compare(key: &str, old: Option<&Value>, new: Option<&Value>, found: &mut Vec<Difference>) {
    let child = |name: &str| match key {
        "" => name.to_owned(),
        _ => format!("{key}.{name}"),
    };
    match (old, new) {
        (Some(Value::Object(a)), Some(Value::Object(b))) if a.get("kind") == b.get("kind") => {
            for (name, value) in a {
                compare(&child(name), Some(value), b.get(name), found);
            }
            for (name, value) in b.iter().filter(|(name, _)| !a.contains_key(*name)) {
                compare(&child(name), None, Some(value), found);
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                compare(&format!("{key}[{i}]"), Some(x), Some(y), found);
            }
        }
        (a, b) if a != b => found.push(Difference {
            key: key.to_owned(),
            old: a.cloned(),
            new: b.cloned(),
        }),
        _ => {}
    }
}
