//! Malformed requests: every one is a 400 (or 404) with a JSON error body, and none of
//! them writes to the journal.

use berth_http::client::{Client, RawResponse};
use berth_tests::raw::RawStream;
use berth_tests::{last_seq, TestDaemon};
use hyper::Method;

/// Asserts the status and the `{"error":{"kind":..,"message":..}}` shape.
#[track_caller]
fn assert_error(what: &str, res: &RawResponse, status: u16, kind: &str) {
    let body = String::from_utf8_lossy(&res.body);
    assert_eq!(res.status.as_u16(), status, "{what}: body {body}");
    assert_eq!(
        res.content_type.as_deref(),
        Some("application/json"),
        "{what}: body {body}"
    );
    let v: serde_json::Value =
        serde_json::from_slice(&res.body).unwrap_or_else(|e| panic!("{what}: {e}: {body}"));
    let obj = v.as_object().expect("an object");
    assert_eq!(obj.len(), 1, "{what}: only `error` at the top: {body}");
    let err = v["error"]
        .as_object()
        .unwrap_or_else(|| panic!("{what}: {body}"));
    assert_eq!(err.len(), 2, "{what}: kind and message only: {body}");
    assert_eq!(err["kind"], kind, "{what}: {body}");
    let message = err["message"].as_str().expect("a string message");
    assert!(!message.is_empty(), "{what}: empty message");
}

async fn post(c: &Client, body: &str) -> RawResponse {
    c.raw(
        Method::POST,
        "/v1/namespaces",
        Some(body.as_bytes().to_vec()),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn rejected_requests_are_json_errors_and_write_nothing() {
    let d = TestDaemon::start();
    let c = d.client();
    let before = last_seq(&c).await;
    let stats_before = c.journal_stats().await.unwrap().stats;

    let long = "a".repeat(77);
    let big_label = format!(r#"{{"name":"ok","labels":{{"k":"{}"}}}}"#, "v".repeat(5000));
    let bodies: Vec<(&str, String)> = vec![
        ("malformed JSON", r#"{"name":"#.into()),
        ("not JSON", "name=x".into()),
        ("empty body", String::new()),
        ("unknown field", r#"{"name":"x","bogus":1}"#.into()),
        ("missing name", r#"{"labels":{}}"#.into()),
        ("name is a number", r#"{"name":5}"#.into()),
        ("name is null", r#"{"name":null}"#.into()),
        ("labels is a list", r#"{"name":"x","labels":["a"]}"#.into()),
        (
            "label value is a number",
            r#"{"name":"x","labels":{"k":1}}"#.into(),
        ),
        ("body is a list", r#"[{"name":"x"}]"#.into()),
        ("empty name", r#"{"name":""}"#.into()),
        ("leading separator", r#"{"name":"-a"}"#.into()),
        ("trailing separator", r#"{"name":"a."}"#.into()),
        ("double separator", r#"{"name":"a--b"}"#.into()),
        ("space", r#"{"name":"a b"}"#.into()),
        ("slash", r#"{"name":"a/b"}"#.into()),
        ("non-ASCII", r#"{"name":"café"}"#.into()),
        ("too long", format!(r#"{{"name":"{long}"}}"#)),
        (
            "empty label key",
            r#"{"name":"ok","labels":{"":"v"}}"#.into(),
        ),
        ("label too big", big_label),
    ];
    for (what, body) in &bodies {
        assert_error(what, &post(&c, body).await, 400, "InvalidArgument");
    }

    let gets = [
        ("invalid name in path", "/v1/namespaces/-bad"),
        ("encoded slash in path", "/v1/namespaces/a%2Fb"),
        ("limit zero", "/v1/journal?limit=0"),
        ("limit too big", "/v1/journal?limit=10001"),
        ("limit not a number", "/v1/journal?limit=abc"),
        ("negative from", "/v1/journal?from=-1"),
        ("unknown journal parameter", "/v1/journal?bogus=1"),
        ("since not a number", "/v1/events?since=abc"),
        ("unknown events parameter", "/v1/events?bogus=1"),
        ("invalid namespace filter", "/v1/events?namespace=a..b"),
    ];
    for (what, path) in gets {
        let res = c.raw(Method::GET, path, None).await.unwrap();
        assert_error(what, &res, 400, "InvalidArgument");
    }
    let res = c
        .raw(Method::DELETE, "/v1/namespaces/a..b", None)
        .await
        .unwrap();
    assert_error("invalid name to delete", &res, 400, "InvalidArgument");

    for bad_id in ["abc", "-1", "1.5", "", "18446744073709551616"] {
        let res = c
            .send(
                Method::GET,
                "/v1/events",
                None,
                &[("last-event-id", bad_id.to_string())],
            )
            .await
            .unwrap();
        let status = res.status();
        let ct = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let body = http_body_util::BodyExt::collect(res.into_body())
            .await
            .unwrap()
            .to_bytes();
        let raw = RawResponse {
            status,
            content_type: ct,
            body,
        };
        assert_error(
            &format!("Last-Event-ID {bad_id:?}"),
            &raw,
            400,
            "InvalidArgument",
        );
    }

    // Unknown routes and methods: 404 with the same JSON shape.
    for (method, path) in [
        (Method::GET, "/nope"),
        (Method::GET, "/v1/nope"),
        (Method::GET, "/v2/namespaces"),
        (Method::PUT, "/v1/namespaces"),
        (Method::POST, "/v1/namespaces/x"),
    ] {
        let res = c.raw(method.clone(), path, None).await.unwrap();
        assert_error(&format!("{method} {path}"), &res, 404, "NotFound");
    }

    // The same refusal for a truncated body sent by hand, without the client.
    let mut raw = RawStream::request(
        d.socket(),
        "POST",
        "/v1/namespaces",
        &[],
        Some(br#"{"name":"#),
    );
    raw.read_to_end(std::time::Duration::from_secs(10));
    assert_eq!(raw.response().status, 400);

    // Nothing was written.
    assert_eq!(last_seq(&c).await, before);
    let stats_after = c.journal_stats().await.unwrap().stats;
    assert_eq!(stats_after.last_seq, stats_before.last_seq);
    assert_eq!(stats_after.records, stats_before.records);
    let names: Vec<String> = c
        .namespaces()
        .await
        .unwrap()
        .namespaces
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert_eq!(names, ["default"]);
}
