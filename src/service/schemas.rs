//! Event-type schemas, enforced at publish.
//!
//! An event type in the catalogue may carry a JSON Schema (draft 2020-12, by the
//! `jsonschema` crate: a well-kept, complete implementation; built without its remote and
//! file resolvers, so a `$ref` can never make Herald fetch anything). A publish whose
//! payload does not validate is refused with 400 before anything is written, naming the
//! failing path and keyword.
//!
//! Publishing must not pay a catalogue read per event: compiled validators (and the
//! absence of one) are cached per event type for `FRESH`. A change made through this
//! process clears the cache at once; one made on another replica reaches this one within
//! `FRESH`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::store::{Store, StoreError};

/// How long a cached schema (or "no schema") is trusted.
const FRESH: Duration = Duration::from_secs(5);

/// A schema must stay small: it is compiled on every cache miss and shown on pages.
pub const MAX_SCHEMA_BYTES: usize = 64 * 1024;

pub type Validator = jsonschema::Validator;

/// Per event type: when it was read, and its compiled schema if it has one.
type Entries = HashMap<String, (Instant, Option<Arc<Validator>>)>;

#[derive(Default)]
pub struct SchemaCache {
    entries: Mutex<Entries>,
}

impl SchemaCache {
    /// The validator for `event_type`, if its catalogue entry has a schema.
    pub async fn of(
        &self,
        store: &Store,
        event_type: &str,
    ) -> Result<Option<Arc<Validator>>, StoreError> {
        if let Some((at, hit)) = self.lock().get(event_type) {
            if at.elapsed() < FRESH {
                return Ok(hit.clone());
            }
        }
        let validator = match store.get_event_type(event_type).await {
            Ok(t) => match t.schema {
                // Stored only after it compiled (`compile`); a row that no longer does
                // (edited by hand) enforces nothing rather than refusing every publish.
                Some(raw) => serde_json::from_str(raw.get())
                    .ok()
                    .and_then(|v| compile(&v).ok())
                    .map(Arc::new),
                None => None,
            },
            Err(StoreError::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        self.lock()
            .insert(event_type.to_owned(), (Instant::now(), validator.clone()));
        Ok(validator)
    }

    /// Forgets every cached schema (an event type changed here).
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Compiles a schema as draft 2020-12; the error says what is wrong with it.
pub fn compile(schema: &Value) -> Result<Validator, String> {
    if !schema.is_object() {
        return Err("schema must be a JSON Schema object".into());
    }
    jsonschema::draft202012::new(schema)
        .map_err(|e| format!("schema is not a valid JSON Schema (draft 2020-12): {e}"))
}

/// Why `payload` does not satisfy `validator`: the first failure's path in the payload
/// (a JSON Pointer), the schema keyword that failed, and its message.
pub fn violation(validator: &Validator, payload: &Value) -> Option<String> {
    let error = validator.iter_errors(payload).next()?;
    let path = error.instance_path().to_string();
    let keyword = error
        .schema_path()
        .to_string()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let at = if path.is_empty() { "/".into() } else { path };
    Some(format!("payload at `{at}` fails `{keyword}`: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_violation_names_the_path_and_keyword() {
        let v = compile(&json!({
            "type": "object",
            "required": ["task_id"],
            "properties": {"task_id": {"type": "string"}, "n": {"type": "integer", "minimum": 1}}
        }))
        .unwrap();
        assert_eq!(violation(&v, &json!({"task_id": "t1", "n": 2})), None);
        let missing = violation(&v, &json!({"n": 2})).unwrap();
        assert!(
            missing.contains("`/`") && missing.contains("`required`"),
            "{missing}"
        );
        let small = violation(&v, &json!({"task_id": "t", "n": 0})).unwrap();
        assert!(
            small.contains("`/n`") && small.contains("`minimum`"),
            "{small}"
        );
    }

    #[test]
    fn an_invalid_schema_is_refused() {
        assert!(compile(&json!({"type": "no-such-type"})).is_err());
        assert!(compile(&json!({"minimum": "one"})).is_err());
        assert!(compile(&json!([1])).is_err());
        assert!(compile(&json!({"type": "object"})).is_ok());
    }
}
