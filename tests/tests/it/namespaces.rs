//! Namespaces through the typed client: the round trip and the canonical errors.

use berth_http::api::types::{CreateNamespaceRequest, NamespaceResponse};
use berth_tests::{create_ns, expect_api_error, last_seq, ns_req, TestDaemon, GENESIS_SEQ};
use hyper::Method;

#[tokio::test(flavor = "multi_thread")]
async fn create_list_get_delete_round_trip() {
    let d = TestDaemon::start();
    let c = d.client();

    // A new installation has exactly the default namespace, created at seq 1; the
    // journal's tip is the genesis tip (the default network follows at seq 2).
    let list = c.namespaces().await.unwrap();
    let names: Vec<&str> = list.namespaces.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["default"]);
    assert_eq!(list.seq, GENESIS_SEQ);

    let created = c
        .create_namespace(&CreateNamespaceRequest {
            name: "team-a".into(),
            labels: [("owner".to_string(), "ops".to_string())].into(),
        })
        .await
        .unwrap();
    assert_eq!(created.namespace.name, "team-a");
    assert_eq!(created.namespace.labels["owner"], "ops");
    assert_eq!(created.seq, GENESIS_SEQ + 1);
    let b = create_ns(&c, "k8s.io").await;
    assert_eq!(b.seq, GENESIS_SEQ + 2);
    assert_eq!(last_seq(&c).await, GENESIS_SEQ + 2);

    let list = c.namespaces().await.unwrap();
    let names: Vec<&str> = list.namespaces.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["default", "k8s.io", "team-a"]);
    assert_eq!(list.seq, GENESIS_SEQ + 2);

    let got: NamespaceResponse = c
        .call(Method::GET, "/v1/namespaces/team-a", None::<&()>)
        .await
        .unwrap();
    assert_eq!(got.namespace, created.namespace);

    let deleted = c.delete_namespace("team-a").await.unwrap();
    assert_eq!(deleted.deleted, "team-a");
    assert_eq!(deleted.seq, GENESIS_SEQ + 3);
    expect_api_error(
        c.call::<NamespaceResponse>(Method::GET, "/v1/namespaces/team-a", None::<&()>)
            .await,
        404,
        "NotFound",
    );
    let names: Vec<String> = c
        .namespaces()
        .await
        .unwrap()
        .namespaces
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert_eq!(names, ["default", "k8s.io"]);

    // A deleted name can be created again.
    assert_eq!(create_ns(&c, "team-a").await.seq, GENESIS_SEQ + 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn canonical_errors() {
    let d = TestDaemon::start();
    let c = d.client();
    create_ns(&c, "dup").await;
    let before = last_seq(&c).await;

    let msg = expect_api_error(
        c.create_namespace(&ns_req("dup")).await,
        409,
        "AlreadyExists",
    );
    assert!(msg.contains("dup"), "{msg}");
    let msg = expect_api_error(
        c.delete_namespace("default").await,
        409,
        "FailedPrecondition",
    );
    assert!(msg.contains("default"), "{msg}");
    let msg = expect_api_error(c.delete_namespace("missing").await, 404, "NotFound");
    assert!(msg.contains("missing"), "{msg}");
    expect_api_error(
        c.call::<NamespaceResponse>(Method::GET, "/v1/namespaces/missing", None::<&()>)
            .await,
        404,
        "NotFound",
    );

    // Refused commands write nothing.
    assert_eq!(last_seq(&c).await, before);
}
