//! Events: past-tense facts, each with a topic (its type name, also the event-stream
//! topic) and a schema version.
//!
//! On the journal an event is stored as `(topic, schema, payload)` where the payload is
//! the variant's body encoded with `rmp_serde::to_vec_named`. Decoding looks at the
//! schema: the current version decodes directly, an older one is decoded into its
//! frozen type (see [`v1`]) and upcast; a newer one (written by a newer berth) is
//! refused, never guessed at. Stored events are never rewritten.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::ids::{Labels, NamespaceName};

/// The kind of aggregate an event belongs to (the journal's stream kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamKind {
    /// A namespace.
    Namespace,
}

impl StreamKind {
    /// The kind as stored in the journal.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamKind::Namespace => "namespace",
        }
    }
}

/// A namespace was created.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct NamespaceCreated {
    /// Its name.
    pub name: NamespaceName,
    /// Its labels (added in schema 2; upcast from 1 as empty).
    pub labels: Labels,
    /// When it was created (added in schema 2; upcast from 1 as the record's time).
    pub created_at: DateTime<Utc>,
}

/// A namespace was deleted.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct NamespaceDeleted {
    /// Its name.
    pub name: NamespaceName,
}

/// Why a stored event could not be decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// The topic is not one this berth knows.
    #[error("unknown event topic {topic:?} (written by a newer berth?)")]
    UnknownTopic {
        /// The topic.
        topic: String,
    },
    /// The schema is newer than this berth's.
    #[error("event {topic} has schema {schema}, newer than this berth's {current}")]
    NewerSchema {
        /// The topic.
        topic: String,
        /// The stored schema.
        schema: u16,
        /// This berth's schema.
        current: u16,
    },
    /// The schema is older than any this berth can upcast.
    #[error("event {topic} has schema {schema}, which this berth cannot upcast")]
    UnknownOldSchema {
        /// The topic.
        topic: String,
        /// The stored schema.
        schema: u16,
    },
    /// The payload does not decode as the type its topic and schema name.
    #[error("event {topic} (schema {schema}) does not decode: {reason}")]
    Payload {
        /// The topic.
        topic: String,
        /// The stored schema.
        schema: u16,
        /// The decoder's complaint.
        reason: String,
    },
}

/// Declares the event enum with one line per variant: its body type, topic and
/// current schema version.
macro_rules! events {
    ($( $(#[$doc:meta])* $variant:ident($ty:ty) => $topic:literal, schema $schema:literal; )*) => {
        /// Every fact berth records. Serializes (to JSON for the API) as the body alone;
        /// the topic says which variant it is.
        #[derive(Debug, Clone, PartialEq, Serialize)]
        #[serde(untagged)]
        pub enum Event {
            $( $(#[$doc])* $variant($ty), )*
        }

        impl Event {
            /// Every topic with its current schema.
            pub const TOPICS: &'static [(&'static str, u16)] = &[$( ($topic, $schema), )*];

            /// The event's topic (type name), e.g. `namespace.created`.
            pub fn topic(&self) -> &'static str {
                match self { $( Event::$variant(_) => $topic, )* }
            }

            /// The current schema version of this event's type.
            pub fn schema(&self) -> u16 {
                match self { $( Event::$variant(_) => $schema, )* }
            }

            /// The body encoded for the journal (`rmp_serde::to_vec_named`).
            pub fn encode_payload(&self) -> Vec<u8> {
                let out = match self { $( Event::$variant(e) => rmp_serde::to_vec_named(e), )* };
                // Encoding plain structs of strings, maps and times cannot fail.
                out.expect("event bodies always encode")
            }

            fn current_schema(topic: &str) -> Option<u16> {
                match topic { $( $topic => Some($schema), )* _ => None }
            }

            fn decode_current(topic: &str, payload: &[u8]) -> Result<Event, String> {
                match topic {
                    $( $topic => rmp_serde::from_slice::<$ty>(payload)
                        .map(Event::$variant)
                        .map_err(|e| e.to_string()), )*
                    _ => Err(format!("unknown topic {topic}")),
                }
            }
        }
    };
}

events! {
    /// A namespace was created.
    NamespaceCreated(NamespaceCreated) => "namespace.created", schema 2;
    /// A namespace was deleted.
    NamespaceDeleted(NamespaceDeleted) => "namespace.deleted", schema 1;
}

impl Event {
    /// The namespace this event belongs to.
    pub fn namespace(&self) -> &NamespaceName {
        match self {
            Event::NamespaceCreated(e) => &e.name,
            Event::NamespaceDeleted(e) => &e.name,
        }
    }

    /// The aggregate this event belongs to: `(kind, id)`.
    pub fn stream(&self) -> (StreamKind, String) {
        match self {
            Event::NamespaceCreated(e) => (StreamKind::Namespace, e.name.to_string()),
            Event::NamespaceDeleted(e) => (StreamKind::Namespace, e.name.to_string()),
        }
    }

    /// Decodes a stored event. `at` is the record's time, which upcasters may use to fill
    /// fields older schemas did not carry.
    pub fn decode(
        topic: &str,
        schema: u16,
        payload: &[u8],
        at: DateTime<Utc>,
    ) -> Result<Event, DecodeError> {
        let current = Event::current_schema(topic).ok_or_else(|| DecodeError::UnknownTopic {
            topic: topic.to_string(),
        })?;
        let payload_err = |reason: String| DecodeError::Payload {
            topic: topic.to_string(),
            schema,
            reason,
        };
        if schema == current {
            return Event::decode_current(topic, payload).map_err(payload_err);
        }
        if schema > current {
            return Err(DecodeError::NewerSchema {
                topic: topic.to_string(),
                schema,
                current,
            });
        }
        match v1::upcast(topic, schema, payload, at) {
            Some(r) => r.map_err(payload_err),
            None => Err(DecodeError::UnknownOldSchema {
                topic: topic.to_string(),
                schema,
            }),
        }
    }
}

/// A decoded journal record, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventEnvelope {
    /// Sequence number.
    pub seq: u64,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Namespace.
    pub namespace: String,
    /// Aggregate.
    pub stream: StreamView,
    /// Topic.
    pub topic: String,
    /// Schema of `event` as shown (the current one: old events are upcast).
    pub schema: u16,
    /// The event body.
    pub event: Event,
}

/// `(kind, id)` of an aggregate, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StreamView {
    /// Aggregate kind.
    pub kind: String,
    /// Aggregate id.
    pub id: String,
}

/// Frozen types of schema 1 and their upcasters. These types never change: they are how
/// events written by older berths are read.
pub mod v1 {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Serialize};

    use super::{Event, NamespaceCreated};
    use crate::ids::{Labels, NamespaceName};

    /// `namespace.created`, schema 1: the name only.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct NamespaceCreatedV1 {
        /// Its name.
        pub name: NamespaceName,
    }

    /// Upcasts an old-schema payload to the current event; `None` when no upcaster
    /// exists for `(topic, schema)`.
    pub fn upcast(
        topic: &str,
        schema: u16,
        payload: &[u8],
        at: DateTime<Utc>,
    ) -> Option<Result<Event, String>> {
        match (topic, schema) {
            ("namespace.created", 1) => Some(
                rmp_serde::from_slice::<NamespaceCreatedV1>(payload)
                    .map(|old| {
                        Event::NamespaceCreated(NamespaceCreated {
                            name: old.name,
                            labels: Labels::new(),
                            created_at: at,
                        })
                    })
                    .map_err(|e| e.to_string()),
            ),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-28T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn created(name: &str) -> Event {
        let mut labels = Labels::new();
        labels.insert("team".into(), "a".into());
        Event::NamespaceCreated(NamespaceCreated {
            name: NamespaceName::parse(name).unwrap(),
            labels,
            created_at: at(),
        })
    }

    #[test]
    fn current_roundtrip() {
        let e = created("blue");
        let back = Event::decode(e.topic(), e.schema(), &e.encode_payload(), at()).unwrap();
        assert_eq!(back, e);
        assert_eq!(e.topic(), "namespace.created");
        assert_eq!(e.stream(), (StreamKind::Namespace, "blue".to_string()));
    }

    #[test]
    fn v1_is_upcast() {
        let old = v1::NamespaceCreatedV1 {
            name: NamespaceName::parse("legacy").unwrap(),
        };
        let payload = rmp_serde::to_vec_named(&old).unwrap();
        let e = Event::decode("namespace.created", 1, &payload, at()).unwrap();
        assert_eq!(
            e,
            Event::NamespaceCreated(NamespaceCreated {
                name: NamespaceName::parse("legacy").unwrap(),
                labels: Labels::new(),
                created_at: at(),
            })
        );
    }

    #[test]
    fn refuses_newer_unknown_and_garbage() {
        let e = created("x");
        assert!(matches!(
            Event::decode(e.topic(), 99, &e.encode_payload(), at()),
            Err(DecodeError::NewerSchema { .. })
        ));
        assert!(matches!(
            Event::decode("container.teleported", 1, &[], at()),
            Err(DecodeError::UnknownTopic { .. })
        ));
        assert!(matches!(
            Event::decode("namespace.created", 2, b"\xc1garbage", at()),
            Err(DecodeError::Payload { .. })
        ));
        assert!(matches!(
            Event::decode("namespace.deleted", 0, b"", at()),
            Err(DecodeError::UnknownOldSchema { .. })
        ));
    }

    #[test]
    fn invalid_names_in_payload_are_rejected() {
        // A payload whose name breaks the rules cannot become an event.
        #[derive(Serialize)]
        struct Raw<'a> {
            name: &'a str,
        }
        let payload = rmp_serde::to_vec_named(&Raw { name: "../etc" }).unwrap();
        assert!(Event::decode("namespace.deleted", 1, &payload, at()).is_err());
    }
}
