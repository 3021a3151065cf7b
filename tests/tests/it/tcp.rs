//! The TCP listener needs the bearer token; the unix socket does not, and has mode 0660.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};

use berth_tests::{create_ns, expect_api_error, TestDaemon, GENESIS_SEQ, TOKEN};
use hyper::Method;

#[tokio::test(flavor = "multi_thread")]
async fn tcp_requires_the_token() {
    let d = TestDaemon::builder().tcp().start();

    for (what, client) in [
        ("no token", d.tcp_client(None)),
        (
            "wrong token",
            d.tcp_client(Some("not-the-token-0123456789")),
        ),
        (
            "token prefix",
            d.tcp_client(Some(&TOKEN[..TOKEN.len() - 1])),
        ),
    ] {
        let res = client.raw(Method::GET, "/v1/healthz", None).await.unwrap();
        assert_eq!(res.status.as_u16(), 401, "{what}");
        assert_eq!(
            res.content_type.as_deref(),
            Some("application/json"),
            "{what}"
        );
        let v = res.json().unwrap();
        assert_eq!(v["error"]["kind"], "Unauthenticated", "{what}: {v}");
        assert!(v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        // Writes and the event stream are refused too, and nothing is written.
        expect_api_error(
            client
                .create_namespace(&berth_tests::ns_req("sneaky"))
                .await,
            401,
            "Unauthenticated",
        );
        expect_api_error(
            client.events("since=0", None).await.map(|_| ()),
            401,
            "Unauthenticated",
        );
        // Unknown routes are not revealed either.
        let res = client.raw(Method::GET, "/v1/nope", None).await.unwrap();
        assert_eq!(res.status.as_u16(), 401, "{what}");
    }

    let authed = d.tcp_client(Some(TOKEN));
    let res = authed.raw(Method::GET, "/v1/healthz", None).await.unwrap();
    assert_eq!(res.status.as_u16(), 200);
    assert_eq!(
        authed.health().await.unwrap().seq,
        GENESIS_SEQ,
        "nothing was written"
    );
    create_ns(&authed, "over-tcp").await;
    let mut events = authed.events("since=0", None).await.unwrap();
    assert_eq!(berth_tests::next_event(&mut events).await.id, Some(1));

    // The unix socket needs no token and sees the same state.
    let unix = d.client();
    let names: Vec<String> = unix
        .namespaces()
        .await
        .unwrap()
        .namespaces
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert_eq!(names, ["default", "over-tcp"]);
}

#[test]
fn socket_mode_is_0660() {
    let d = TestDaemon::start();
    let meta = std::fs::metadata(d.socket()).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o660);
}
