//! `berth network create|ls|inspect|rm`.
//!
//! Flags become the API's request by a pure function ([`NetworkCommand::create_request`])
//! that checks the subnet and gateway before the daemon is asked.

use std::net::Ipv4Addr;

use anyhow::bail;
use berth_engine::network::Subnet;
use berth_http::api::types::{CreateNetworkRequest, NetworkView};
use berth_http::client::Client;
use clap::Subcommand;

use crate::output::{json, table};

/// The network commands.
#[derive(Debug, Clone, Subcommand)]
pub enum NetworkCommand {
    /// Create a bridge network
    Create {
        /// Its name
        name: String,
        /// IPv4 subnet in CIDR form, e.g. 10.89.0.0/24
        #[arg(long, value_name = "CIDR")]
        subnet: String,
        /// The bridge's address (default: the subnet's first address)
        #[arg(long, value_name = "IP")]
        gateway: Option<String>,
        /// Name of the Linux bridge (default: derived from the network's name)
        #[arg(long, value_name = "NAME")]
        bridge: Option<String>,
        /// Label KEY=VALUE (repeatable)
        #[arg(short = 'l', long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
    },
    /// List networks
    #[command(visible_alias = "list")]
    Ls {
        /// Only networks with this label: KEY or KEY=VALUE (repeatable)
        #[arg(short = 'f', long = "filter", value_name = "label=KEY[=VALUE]")]
        filters: Vec<String>,
    },
    /// Show a network as JSON, with the containers configured on it or attached to it
    Inspect {
        /// Network
        name: String,
    },
    /// Remove networks no container uses
    #[command(visible_alias = "remove")]
    Rm {
        /// Networks
        #[arg(required = true)]
        names: Vec<String>,
    },
}

/// `-l KEY=VALUE` or `-l KEY` (an empty value).
fn labels(raw: &[String]) -> anyhow::Result<berth_engine::ids::Labels> {
    raw.iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            None if !l.is_empty() => Ok((l.clone(), String::new())),
            _ => bail!("invalid label {l:?}: use KEY=VALUE"),
        })
        .collect()
}

/// The `POST /v1/networks` body of `berth network create`; a bad subnet, gateway or
/// label is refused here, before the daemon is asked.
pub fn create_request(
    name: &str,
    subnet: &str,
    gateway: Option<&str>,
    bridge: Option<&str>,
    raw_labels: &[String],
) -> anyhow::Result<CreateNetworkRequest> {
    Subnet::parse(subnet)?;
    if let Some(g) = gateway {
        if g.parse::<Ipv4Addr>().is_err() {
            bail!("invalid gateway {g:?}: not an IPv4 address");
        }
    }
    Ok(CreateNetworkRequest {
        name: name.to_string(),
        subnet: subnet.to_string(),
        gateway: gateway.map(String::from),
        bridge: bridge.map(String::from),
        labels: labels(raw_labels)?,
    })
}

/// The query of `GET /v1/networks` for `-f label=…` filters.
pub fn list_query(filters: &[String]) -> anyhow::Result<String> {
    filters
        .iter()
        .map(|f| match f.split_once('=') {
            Some(("label", v)) if !v.is_empty() && !v.starts_with('=') => {
                Ok(format!("label={}", berth_http::client::encode_path(v)))
            }
            _ => bail!("invalid filter {f:?}: use label=KEY[=VALUE]"),
        })
        .collect::<anyhow::Result<Vec<_>>>()
        .map(|parts| parts.join("&"))
}

/// The rows of `berth network ls`.
pub fn ls_rows(networks: &[NetworkView]) -> Vec<Vec<String>> {
    networks
        .iter()
        .map(|n| {
            vec![
                n.name.clone(),
                n.subnet.clone(),
                n.gateway.to_string(),
                n.bridge.clone(),
                n.containers.len().to_string(),
            ]
        })
        .collect()
}

/// Runs a network command; returns the exit code.
pub async fn command(client: &Client, as_json: bool, c: &NetworkCommand) -> anyhow::Result<i32> {
    match c {
        NetworkCommand::Create {
            name,
            subnet,
            gateway,
            bridge,
            labels,
        } => {
            let req = create_request(name, subnet, gateway.as_deref(), bridge.as_deref(), labels)?;
            let res = client.network_create(&req).await?;
            if as_json {
                json(&res)?;
            } else {
                println!("{}", res.network.name);
            }
            Ok(0)
        }
        NetworkCommand::Ls { filters } => {
            let list = client.network_list(&list_query(filters)?).await?;
            if as_json {
                json(&list)?;
            } else {
                table(
                    &["NAME", "SUBNET", "GATEWAY", "BRIDGE", "CONTAINERS"],
                    &ls_rows(&list.networks),
                );
            }
            Ok(0)
        }
        NetworkCommand::Inspect { name } => {
            json(&client.network_get(name).await?.network)?;
            Ok(0)
        }
        NetworkCommand::Rm { names } => {
            // Every name is tried; each failure is one line and makes the exit code 1.
            let mut code = 0;
            for name in names {
                match client.network_delete(name).await {
                    Ok(d) if as_json => json(&d)?,
                    Ok(_) => println!("{name}"),
                    Err(e) => {
                        eprintln!("berth: {name}: {e}");
                        code = 1;
                    }
                }
            }
            Ok(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{parse, try_parse};

    #[test]
    fn create_flags_become_the_request() {
        let NetworkCommand::Create {
            name,
            subnet,
            gateway,
            bridge,
            labels,
        } = parse(&[
            "create",
            "web",
            "--subnet",
            "172.31.7.0/24",
            "--gateway",
            "172.31.7.254",
            "--bridge",
            "br-web",
            "-l",
            "tier=front",
            "--label",
            "flag",
        ])
        else {
            panic!("not create")
        };
        let r = create_request(
            &name,
            &subnet,
            gateway.as_deref(),
            bridge.as_deref(),
            &labels,
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!({
                "name": "web", "subnet": "172.31.7.0/24", "gateway": "172.31.7.254",
                "bridge": "br-web", "labels": {"tier": "front", "flag": ""}
            })
        );
        let r = create_request("n", "10.1.0.0/16", None, None, &[]).unwrap();
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!({"name": "n", "subnet": "10.1.0.0/16"})
        );
        assert!(try_parse::<NetworkCommand>(&["create", "n"]).is_err());
    }

    #[test]
    fn bad_values_are_refused_before_the_daemon() {
        let e = create_request("n", "10.1.2.300/24", None, None, &[]).unwrap_err();
        assert!(e.to_string().contains("10.1.2.300/24"), "{e}");
        let e = create_request("n", "10.1.2.3/24", None, None, &[]).unwrap_err();
        assert!(e.to_string().contains("10.1.2.0/24"), "{e}");
        let e = create_request("n", "10.1.2.0/24", Some("nope"), None, &[]).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
        assert!(create_request("n", "10.1.2.0/24", None, None, &["=v".into()]).is_err());
    }

    #[test]
    fn ls_filters_and_rows() {
        assert_eq!(list_query(&[]).unwrap(), "");
        assert_eq!(
            list_query(&["label=a=b".into(), "label=k".into()]).unwrap(),
            "label=a%3Db&label=k"
        );
        assert!(list_query(&["name=x".into()]).is_err());
        assert!(list_query(&["label=".into()]).is_err());
        let n = NetworkView {
            name: "berth0".into(),
            bridge: "berth0".into(),
            subnet: "10.232.0.0/24".into(),
            gateway: Ipv4Addr::new(10, 232, 0, 1),
            labels: Default::default(),
            default: true,
            created_at: chrono::DateTime::from_timestamp(0, 0).unwrap(),
            containers: vec![],
        };
        assert_eq!(
            ls_rows(&[n]),
            [["berth0", "10.232.0.0/24", "10.232.0.1", "berth0", "0"]]
        );
    }
}
