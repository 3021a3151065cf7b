//! `/v1/networks`: bridge networks (host-wide, not per namespace).
//!
//! Bodies are parsed here once (subnet, gateway, labels; a bad value is a 400 naming
//! it); creation and deletion go to the supervisor, which decides uniqueness, overlaps
//! and use. Reads come from the shared state; a network's `containers` are those
//! configured on it or attached to it, in every namespace (the ones that keep it from
//! being deleted), with their address while attached.

use std::net::Ipv4Addr;

use actix_web::{web, HttpResponse};
use berth_actors::messages::{CreateNetwork, DeleteNetwork};
use berth_engine::ids::validate_labels;
use berth_engine::network::Subnet;
use berth_engine::state::{Network, State};
use berth_engine::EngineError;

use crate::api::error::ApiError;
use crate::api::types::{
    CreateNetworkRequest, Deleted, NetworkContainerView, NetworkList, NetworkResponse, NetworkView,
};
use crate::routes::{mailbox, AppState};

/// The API view of a network, with the containers configured on it or attached to it.
pub fn view(s: &State, n: &Network) -> NetworkView {
    let mut containers: Vec<NetworkContainerView> = s
        .containers
        .values()
        .filter_map(|c| {
            let attachment = c.attachment.as_ref().filter(|a| a.network == n.name);
            if attachment.is_none() && c.config.network.network() != Some(n.name.as_str()) {
                return None;
            }
            Some(NetworkContainerView {
                namespace: c.namespace.to_string(),
                id: c.id.to_string(),
                name: c.name.clone(),
                ip: attachment.and_then(|a| a.attached.as_ref()).map(|at| at.ip),
            })
        })
        .collect();
    containers.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    NetworkView {
        name: n.name.clone(),
        bridge: n.bridge.clone(),
        subnet: n.subnet.to_string(),
        gateway: n.gateway,
        labels: n.labels.clone(),
        default: n.default,
        created_at: n.created_at,
        containers,
    }
}

/// Parses a create body into the supervisor's message.
pub fn create_request(body: CreateNetworkRequest) -> Result<CreateNetwork, EngineError> {
    if body.name.is_empty() {
        return Err(EngineError::InvalidArgument(
            "the network name must not be empty".into(),
        ));
    }
    let subnet = Subnet::parse(&body.subnet)?;
    let gateway = body
        .gateway
        .as_deref()
        .map(|g| {
            g.parse::<Ipv4Addr>().map_err(|_| {
                EngineError::InvalidArgument(format!(
                    "invalid gateway {g:?}: not an IPv4 address (only IPv4 is supported)"
                ))
            })
        })
        .transpose()?;
    if let Some(b) = &body.bridge {
        if b.is_empty() {
            return Err(EngineError::InvalidArgument(
                "the bridge name must not be empty".into(),
            ));
        }
    }
    validate_labels(&body.labels)?;
    Ok(CreateNetwork {
        name: body.name,
        subnet,
        gateway,
        bridge: body.bridge,
        labels: body.labels,
    })
}

/// The label filters of `GET /v1/networks`: `label=KEY=VALUE` or `label=KEY`
/// (repeatable: all must hold).
pub fn label_filters(
    pairs: &[(String, String)],
) -> Result<Vec<(String, Option<String>)>, EngineError> {
    let mut out = Vec::new();
    for (k, v) in pairs {
        if k != "label" {
            return Err(EngineError::InvalidArgument(format!(
                "unknown query parameter {k:?}: use label"
            )));
        }
        if v.is_empty() || v.starts_with('=') {
            return Err(EngineError::InvalidArgument(format!(
                "invalid label filter {v:?}: use KEY or KEY=VALUE"
            )));
        }
        match v.split_once('=') {
            Some((key, value)) => out.push((key.to_string(), Some(value.to_string()))),
            None => out.push((v.clone(), None)),
        }
    }
    Ok(out)
}

fn matches(n: &Network, filters: &[(String, Option<String>)]) -> bool {
    filters
        .iter()
        .all(|(k, want)| match (n.labels.get(k), want) {
            (Some(have), Some(want)) => have == want,
            (Some(_), None) => true,
            (None, _) => false,
        })
}

fn not_found(name: &str) -> EngineError {
    EngineError::NotFound {
        kind: "network",
        id: name.to_string(),
    }
}

/// `GET /v1/networks?label=`.
pub async fn list(
    state: web::Data<AppState>,
    q: web::Query<Vec<(String, String)>>,
) -> Result<HttpResponse, ApiError> {
    let filters = label_filters(&q)?;
    let s = state.handles.writer.state().read();
    Ok(HttpResponse::Ok().json(NetworkList {
        networks: s
            .networks
            .values()
            .filter(|n| matches(n, &filters))
            .map(|n| view(&s, n))
            .collect(),
        seq: s.seq,
    }))
}

/// `GET /v1/networks/{name}`.
pub async fn get(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let s = state.handles.writer.state().read();
    let n = s
        .networks
        .get(name.as_str())
        .ok_or_else(|| not_found(&name))?;
    Ok(HttpResponse::Ok().json(NetworkResponse {
        network: view(&s, n),
        seq: s.seq,
    }))
}

/// `POST /v1/networks`.
pub async fn create(
    state: web::Data<AppState>,
    body: web::Json<CreateNetworkRequest>,
) -> Result<HttpResponse, ApiError> {
    let msg = create_request(body.into_inner())?;
    let reply = state
        .handles
        .supervisor
        .send(msg)
        .await
        .map_err(mailbox)??;
    let s = state.handles.writer.state().read();
    Ok(HttpResponse::Created().json(NetworkResponse {
        network: view(&s, &reply.network),
        seq: reply.seq,
    }))
}

/// `DELETE /v1/networks/{name}`: refused while containers use it, and for the default
/// network.
pub async fn delete(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    let seq = state
        .handles
        .supervisor
        .send(DeleteNetwork { name: name.clone() })
        .await
        .map_err(mailbox)??;
    Ok(HttpResponse::Ok().json(Deleted { deleted: name, seq }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::test_support::msg;

    fn body(json: &str) -> Result<CreateNetworkRequest, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn create_bodies() {
        let m = create_request(body(r#"{"name":"n1","subnet":"172.31.5.0/24"}"#).unwrap()).unwrap();
        assert_eq!(m.name, "n1");
        assert_eq!(m.subnet, Subnet::parse("172.31.5.0/24").unwrap());
        assert_eq!(m.gateway, None);
        assert_eq!(m.bridge, None);
        assert!(m.labels.is_empty());
        let m = create_request(
            body(
                r#"{"name":"n1","subnet":"172.31.5.0/24","gateway":"172.31.5.254",
                    "bridge":"br-n1","labels":{"k":"v"}}"#,
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(m.gateway, Some(Ipv4Addr::new(172, 31, 5, 254)));
        assert_eq!(m.bridge.as_deref(), Some("br-n1"));
        assert_eq!(m.labels.get("k").map(String::as_str), Some("v"));
    }

    #[test]
    fn bad_bodies_name_the_problem() {
        let m = msg(create_request(
            body(r#"{"name":"n","subnet":"10.1.2.300/24"}"#).unwrap(),
        ));
        assert!(m.contains("10.1.2.300/24"), "{m}");
        let m = msg(create_request(
            body(r#"{"name":"n","subnet":"10.1.2.3/24"}"#).unwrap(),
        ));
        assert!(m.contains("10.1.2.0/24"), "host bits: {m}");
        let m = msg(create_request(
            body(r#"{"name":"n","subnet":"10.1.2.0/24","gateway":"10.1.2"}"#).unwrap(),
        ));
        assert!(m.contains("gateway") && m.contains("10.1.2"), "{m}");
        let m = msg(create_request(
            body(r#"{"name":"n","subnet":"10.1.2.0/24","gateway":"fe80::1"}"#).unwrap(),
        ));
        assert!(m.contains("fe80::1"), "{m}");
        let m = msg(create_request(
            body(r#"{"name":"","subnet":"10.1.2.0/24"}"#).unwrap(),
        ));
        assert!(m.contains("name"), "{m}");
        let m = msg(create_request(
            body(r#"{"name":"n","subnet":"10.1.2.0/24","labels":{"":"v"}}"#).unwrap(),
        ));
        assert!(m.contains("label"), "{m}");
        let e = body(r#"{"name":"n","subnet":"10.1.2.0/24","ipv6":true}"#).unwrap_err();
        assert!(e.to_string().contains("ipv6"), "{e}");
        assert!(body(r#"{"name":"n"}"#).is_err());
    }

    #[test]
    fn list_filters() {
        let pairs = |q: &[(&str, &str)]| -> Vec<(String, String)> {
            q.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            label_filters(&pairs(&[("label", "a=b=c"), ("label", "k")])).unwrap(),
            [
                ("a".to_string(), Some("b=c".to_string())),
                ("k".into(), None)
            ]
        );
        assert!(label_filters(&pairs(&[("label", "")])).is_err());
        assert!(label_filters(&pairs(&[("label", "=v")])).is_err());
        assert!(label_filters(&pairs(&[("namespace", "x")])).is_err());
    }
}
