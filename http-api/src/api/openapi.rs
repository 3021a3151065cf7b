//! The OpenAPI 3 document of the API, written by hand and checked against the routes
//! by a test (every documented operation is routed, every route is documented).

use serde_json::{json, Value};

fn err_responses(codes: &[&str]) -> Value {
    let mut m = serde_json::Map::new();
    for c in codes {
        m.insert(
            (*c).to_string(),
            json!({"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}),
        );
    }
    Value::Object(m)
}

fn ok(code: &str, description: &str, schema: &str) -> Value {
    json!({ code: {"description": description, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}} })
}

fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

fn ns_param() -> Value {
    json!({"name": "namespace", "in": "query", "schema": {"type": "string"}, "description": "namespace (default: default)"})
}

fn image_param() -> Value {
    json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string"}, "description": "image name, e.g. registry.example.com/app:v1 (slashes allowed)"})
}

fn container_param() -> Value {
    json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string"}, "description": "container id, name or unique id prefix"})
}

fn json_body(schema: &str) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
}

/// The container operations.
fn container_paths(std_errors: &Value) -> Value {
    let verb = |op: &str, summary: &str, extra: Vec<Value>| {
        let mut params = vec![container_param(), ns_param()];
        params.extend(extra);
        json!({"post": {"operationId": op, "summary": summary, "parameters": params,
            "responses": merge(ok("200", "the container after the change", "ContainerResponse"), std_errors.clone())}})
    };
    let flag = |name: &str, description: &str| json!({"name": name, "in": "query", "schema": {"type": "boolean"}, "description": description});
    json!({
        "/v1/containers": {
            "get": {"operationId": "listContainers", "summary": "List the namespace's containers, newest first",
                "parameters": [ns_param(),
                    {"name": "status", "in": "query", "schema": {"type": "array", "items": {"$ref": "#/components/schemas/ContainerStatus"}}, "style": "form", "explode": true,
                        "description": "only containers in one of these statuses (repeatable, or comma-separated)"},
                    {"name": "label", "in": "query", "schema": {"type": "array", "items": {"type": "string"}}, "style": "form", "explode": true,
                        "description": "KEY=VALUE: the label has this value; KEY: the label is set (repeatable: all must hold)"}],
                "responses": merge(ok("200", "containers", "ContainerList"), err_responses(&["400"]))},
            "post": {"operationId": "createContainer", "summary": "Create a container from an image of the namespace (not started)",
                "parameters": [ns_param()],
                "requestBody": json_body("CreateContainer"),
                "responses": merge(ok("201", "created", "ContainerResponse"), std_errors.clone())}
        },
        "/v1/containers/{id}": {
            "get": {"operationId": "inspectContainer", "summary": "One container, with its configuration",
                "parameters": [container_param(), ns_param()],
                "responses": merge(ok("200", "container", "Container"), std_errors.clone())},
            "delete": {"operationId": "deleteContainer", "summary": "Delete a container, its snapshot, bundle and logs (running: only with force)",
                "parameters": [container_param(), ns_param(), flag("force", "kill a running container first")],
                "responses": merge(ok("200", "deleted (deleted is the container id)", "Deleted"), std_errors.clone())}
        },
        "/v1/containers/{id}/start": verb("startContainer", "Start a created or stopped container", vec![]),
        "/v1/containers/{id}/stop": verb("stopContainer", "Send the stop signal, SIGKILL after the timeout; answered once it exited", vec![
            json!({"name": "timeout", "in": "query", "schema": {"type": "integer", "minimum": 0}, "description": "seconds before SIGKILL (default: the container's stop_timeout)"}),
            json!({"name": "signal", "in": "query", "schema": {"type": "string"}, "description": "signal name or number (default: the container's stop signal)"})]),
        "/v1/containers/{id}/kill": verb("killContainer", "Send a signal to the container's process", vec![
            json!({"name": "signal", "in": "query", "schema": {"type": "string", "default": "KILL"}, "description": "signal name or number"})]),
        "/v1/containers/{id}/pause": verb("pauseContainer", "Freeze the container's processes", vec![]),
        "/v1/containers/{id}/resume": verb("resumeContainer", "Thaw a paused container", vec![]),
        "/v1/containers/{id}/wait": {"post": {"operationId": "waitContainer", "summary": "Answered when the container is not running: its last exit",
            "parameters": [container_param(), ns_param()],
            "responses": merge(ok("200", "exit", "WaitResponse"), std_errors.clone())}},
        "/v1/containers/{id}/exec": {"post": {"operationId": "execInContainer", "summary": "Run a command in the running container and collect its output",
            "parameters": [container_param(), ns_param()],
            "requestBody": json_body("ExecRequest"),
            "responses": merge(ok("200", "what the command produced", "ExecResponse"), std_errors.clone())}},
        "/v1/containers/{id}/logs": {"get": {"operationId": "containerLogs",
            "summary": "The container's output, streamed; with follow, new lines until the container no longer runs",
            "parameters": [container_param(), ns_param(),
                flag("follow", "keep streaming until the container no longer runs and its log is read to the end"),
                {"name": "tail", "in": "query", "schema": {"type": "string"}, "description": "the last N lines, or all (default)"},
                {"name": "since", "in": "query", "schema": {"type": "string"}, "description": "lines written at or after this time: RFC 3339 or unix seconds"},
                flag("timestamps", "text format: prefix each line with its RFC 3339 time (nanoseconds)"),
                flag("stdout", "standard output lines (default true)"),
                flag("stderr", "standard error lines (default true)"),
                {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["text", "json"], "default": "text"}, "description": "text: the lines; json: one LogLine object per line (NDJSON)"}],
            "responses": merge(json!({"200": {"description": "log lines", "content": {
                "text/plain": {"schema": {"type": "string"}},
                "application/x-ndjson": {"schema": {"$ref": "#/components/schemas/LogLine"}}}}}), std_errors.clone())}}
    })
}

/// The container schemas.
fn container_schemas() -> Value {
    let int = json!({"type": "integer"});
    let int64 = json!({"type": "integer", "format": "int64"});
    let string = json!({"type": "string"});
    let strings = json!({"type": "array", "items": {"type": "string"}});
    let time = json!({"type": "string", "format": "date-time"});
    let nullable = |mut v: Value| {
        v["nullable"] = json!(true);
        v
    };
    json!({
        "ContainerStatus": {"type": "string", "enum": ["creating", "created", "running", "paused", "restarting", "stopped", "deleting"]},
        "Mount": {"type": "object", "required": ["type", "destination"], "additionalProperties": false, "properties": {
            "type": {"type": "string", "enum": ["bind", "tmpfs"]},
            "source": {"type": "string", "description": "absolute host path (bind only; must exist)"},
            "destination": {"type": "string", "description": "absolute path in the container"},
            "readonly": {"type": "boolean", "default": false},
            "options": {"type": "array", "items": {"type": "string"}, "description": "bind: nosuid, nodev, noexec; tmpfs: size=, mode=, uid=, gid=, nr_inodes=, noexec, nosuid, nodev, exec, suid, dev, ro, rw"}}},
        "CreateContainer": {"type": "object", "required": ["image"], "additionalProperties": false, "properties": {
            "name": {"type": "string", "description": "unique in the namespace (default: the short id)"},
            "image": {"type": "string"},
            "entrypoint": strings.clone(),
            "cmd": strings.clone(),
            "env": {"type": "array", "items": {"type": "string"}, "description": "KEY=VALUE"},
            "working_dir": string.clone(),
            "user": {"type": "string", "description": "user[:group], names or numbers"},
            "hostname": string.clone(),
            "labels": {"$ref": "#/components/schemas/Labels"},
            "mounts": {"type": "array", "items": {"$ref": "#/components/schemas/Mount"}},
            "read_only": {"type": "boolean", "default": false},
            "memory": {"oneOf": [{"type": "string"}, {"type": "integer", "minimum": 6291456}], "description": "\"512m\" (units b, k, m, g) or bytes; at least 6m"},
            "cpus": {"oneOf": [{"type": "string"}, {"type": "number"}], "description": "CPUs, e.g. 1.5 or \"1.5\" (0.01 to 1024)"},
            "cpu_shares": {"type": "integer", "minimum": 2, "maximum": 262144},
            "pids_limit": {"type": "integer", "format": "int64", "description": "positive, or -1 for no limit"},
            "restart": {"type": "string", "description": "no (default), always, on-failure, on-failure:N"},
            "runtime": {"type": "string", "description": "OCI runtime name (default: the daemon's)"},
            "stop_timeout": {"type": "integer", "minimum": 0},
            "stop_signal": {"type": "string", "description": "name (TERM, SIGINT, RTMIN+3) or number"},
            "network": {"type": "string", "description": "a network's name, bridge (the default network), none, host or container:<id, name or prefix> (default: the default network)"},
            "ports": {"type": "array", "items": {"$ref": "#/components/schemas/PortRequest"}, "description": "ports published on the host (bridge networks only)"}}},
        "PortRequest": {"type": "object", "required": ["host_port", "container_port"], "additionalProperties": false, "properties": {
            "host_port": {"type": "integer", "minimum": 1, "maximum": 65535},
            "container_port": {"type": "integer", "minimum": 1, "maximum": 65535},
            "protocol": {"type": "string", "enum": ["tcp", "udp"], "default": "tcp"},
            "host_ip": {"type": "string", "format": "ipv4", "description": "host address to publish on (default: every address)"}}},
        "PortMapping": {"type": "object", "properties": {
            "host_port": int.clone(), "container_port": int.clone(),
            "protocol": {"type": "string", "enum": ["tcp", "udp"]},
            "host_ip": {"type": "string", "format": "ipv4", "nullable": true}}},
        "ContainerNetwork": {"type": "object", "required": ["mode", "ports"], "properties": {
            "mode": {"type": "string", "enum": ["bridge", "none", "host", "container"]},
            "network": {"type": "string", "description": "the network (bridge mode)"},
            "container": {"type": "string", "description": "the container whose network namespace it shares (container mode)"},
            "ip": {"type": "string", "format": "ipv4", "description": "while attached"},
            "mac": {"type": "string", "description": "while attached"},
            "gateway": {"type": "string", "format": "ipv4", "description": "while attached"},
            "ports": {"type": "array", "items": {"$ref": "#/components/schemas/PortMapping"}}}},
        "Exit": {"type": "object", "properties": {"code": nullable(int.clone()), "signal": nullable(int.clone()), "oom_killed": {"type": "boolean"}, "at": time.clone()}},
        "Container": {"type": "object", "properties": {
            "id": string.clone(), "name": string.clone(), "namespace": string.clone(), "image": string.clone(), "image_digest": string.clone(),
            "status": {"$ref": "#/components/schemas/ContainerStatus"},
            "pid": nullable(int.clone()), "shim_pid": nullable(int.clone()),
            "created_at": time.clone(), "started_at": nullable(time.clone()),
            "exit": {"allOf": [{"$ref": "#/components/schemas/Exit"}], "nullable": true},
            "exit_reason": nullable(string.clone()), "restart_count": int.clone(),
            "restart_policy": {"type": "string", "description": "no, always, on-failure, on-failure:N"},
            "labels": {"$ref": "#/components/schemas/Labels"},
            "last_error": nullable(string.clone()), "pending": nullable(string.clone()),
            "network": {"$ref": "#/components/schemas/ContainerNetwork"},
            "config": {"type": "object", "description": "the configuration it was created with (image resolved to image_digest; resources in OCI units)"}}},
        "ContainerResponse": {"type": "object", "properties": {"container": {"$ref": "#/components/schemas/Container"}, "seq": int64.clone()}},
        "ContainerList": {"type": "object", "properties": {"containers": {"type": "array", "items": {"$ref": "#/components/schemas/Container"}}, "seq": int64.clone()}},
        "WaitResponse": {"type": "object", "properties": {"exit_code": nullable(int.clone()), "signal": nullable(int.clone()), "oom_killed": {"type": "boolean"}, "at": nullable(time.clone())}},
        "ExecRequest": {"type": "object", "required": ["cmd"], "additionalProperties": false, "properties": {
            "cmd": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "env": {"type": "array", "items": {"type": "string"}, "description": "KEY=VALUE (default: the container's environment)"},
            "working_dir": string.clone(),
            "user": {"type": "string", "description": "uid[:gid], numbers (gid 0 when absent)"}}},
        "ExecResponse": {"type": "object", "properties": {"exit_code": int.clone(), "stdout": string.clone(), "stderr": string.clone(), "truncated": {"type": "boolean"}}},
        "LogLine": {"type": "object", "properties": {"at": time, "stream": {"type": "string", "enum": ["stdout", "stderr"]}, "line": string}}
    })
}

/// The network operations.
fn network_paths(std_errors: &Value) -> Value {
    let name = json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string"}, "description": "network name"});
    json!({
        "/v1/networks": {
            "get": {"operationId": "listNetworks", "summary": "List networks (host-wide), by name",
                "parameters": [{"name": "label", "in": "query", "schema": {"type": "array", "items": {"type": "string"}}, "style": "form", "explode": true,
                    "description": "KEY=VALUE: the label has this value; KEY: the label is set (repeatable: all must hold)"}],
                "responses": merge(ok("200", "networks", "NetworkList"), err_responses(&["400"]))},
            "post": {"operationId": "createNetwork", "summary": "Create a bridge network (its subnet must not overlap another network's or a host route)",
                "requestBody": json_body("CreateNetwork"),
                "responses": merge(ok("201", "created", "NetworkResponse"), std_errors.clone())}
        },
        "/v1/networks/{name}": {
            "get": {"operationId": "inspectNetwork", "summary": "One network and the containers attached to it",
                "parameters": [name.clone()],
                "responses": merge(ok("200", "network", "NetworkResponse"), std_errors.clone())},
            "delete": {"operationId": "deleteNetwork", "summary": "Delete a network no container uses (never the default network)",
                "parameters": [name],
                "responses": merge(ok("200", "deleted (deleted is the network's name)", "Deleted"), std_errors.clone())}
        }
    })
}

/// The network schemas.
fn network_schemas() -> Value {
    json!({
        "CreateNetwork": {"type": "object", "required": ["name", "subnet"], "additionalProperties": false, "properties": {
            "name": {"type": "string", "description": "unique on the host"},
            "subnet": {"type": "string", "description": "IPv4 CIDR without host bits, e.g. 10.89.0.0/24"},
            "gateway": {"type": "string", "format": "ipv4", "description": "the bridge's address (default: the subnet's first address)"},
            "bridge": {"type": "string", "description": "Linux bridge name (default: derived from the name)"},
            "labels": {"$ref": "#/components/schemas/Labels"}}},
        "NetworkContainer": {"type": "object", "required": ["namespace", "id", "name"], "properties": {
            "namespace": {"type": "string"}, "id": {"type": "string"}, "name": {"type": "string"},
            "ip": {"type": "string", "format": "ipv4", "description": "once attached"}}},
        "Network": {"type": "object", "properties": {
            "name": {"type": "string"}, "bridge": {"type": "string"}, "subnet": {"type": "string"},
            "gateway": {"type": "string", "format": "ipv4"}, "labels": {"$ref": "#/components/schemas/Labels"},
            "default": {"type": "boolean", "description": "the daemon's default network (cannot be deleted)"},
            "created_at": {"type": "string", "format": "date-time"},
            "containers": {"type": "array", "items": {"$ref": "#/components/schemas/NetworkContainer"}}}},
        "NetworkResponse": {"type": "object", "properties": {"network": {"$ref": "#/components/schemas/Network"}, "seq": {"type": "integer", "format": "int64"}}},
        "NetworkList": {"type": "object", "properties": {"networks": {"type": "array", "items": {"$ref": "#/components/schemas/Network"}}, "seq": {"type": "integer", "format": "int64"}}}
    })
}

fn name_param() -> Value {
    json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string"}})
}

/// The document.
pub fn document() -> Value {
    let std_errors = err_responses(&["400", "401", "404", "409", "503"]);
    let containers = container_paths(&std_errors);
    let networks = network_paths(&std_errors);
    let mut doc = json!({
        "openapi": "3.0.3",
        "info": {
            "title": "berth",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "berth's plumbing API. Errors are {\"error\":{\"kind\":..,\"message\":..}} with kind one of NotFound, AlreadyExists, FailedPrecondition, InvalidArgument, Unavailable, Internal, Unauthenticated."
        },
        "paths": {
            "/v1/version": {"get": {"operationId": "version", "summary": "Daemon and API version",
                "responses": ok("200", "version", "Version")}},
            "/v1/healthz": {"get": {"operationId": "healthz", "summary": "Liveness; answers only after recovery",
                "responses": ok("200", "healthy", "Health")}},
            "/v1/openapi.json": {"get": {"operationId": "openapi", "summary": "This document",
                "responses": {"200": {"description": "OpenAPI 3 document", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
            "/v1/namespaces": {
                "get": {"operationId": "listNamespaces", "summary": "List namespaces",
                    "responses": ok("200", "namespaces", "NamespaceList")},
                "post": {"operationId": "createNamespace", "summary": "Create a namespace",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CreateNamespace"}}}},
                    "responses": merge(ok("201", "created", "NamespaceResponse"), std_errors.clone())}
            },
            "/v1/namespaces/{name}": {
                "get": {"operationId": "getNamespace", "summary": "One namespace", "parameters": [name_param()],
                    "responses": merge(ok("200", "namespace", "NamespaceResponse"), std_errors.clone())},
                "delete": {"operationId": "deleteNamespace", "summary": "Delete an empty namespace (never default)", "parameters": [name_param()],
                    "responses": merge(ok("200", "deleted", "Deleted"), std_errors.clone())}
            },
            "/v1/events": {"get": {"operationId": "events",
                "summary": "Server-sent events: id: <seq>, event: <topic>, data: <EventEnvelope JSON>; resume with Last-Event-ID or since; a too-slow subscriber gets event: resync and is closed",
                "parameters": [
                    {"name": "since", "in": "query", "schema": {"type": "integer", "format": "int64", "minimum": 0}, "description": "deliver events after this sequence number (0: all)"},
                    {"name": "namespace", "in": "query", "schema": {"type": "string"}},
                    {"name": "topic", "in": "query", "schema": {"type": "string"}, "description": "comma-separated topic prefixes"},
                    {"name": "Last-Event-ID", "in": "header", "schema": {"type": "integer", "format": "int64"}}
                ],
                "responses": merge(json!({"200": {"description": "event stream", "content": {"text/event-stream": {"schema": {"type": "string"}}}}}), err_responses(&["400"]))}},
            "/v1/journal": {"get": {"operationId": "readJournal", "summary": "A page of journal records",
                "parameters": [
                    {"name": "from", "in": "query", "schema": {"type": "integer", "format": "int64", "minimum": 1}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 10000}}
                ],
                "responses": merge(ok("200", "records", "JournalPage"), err_responses(&["400", "500", "503"]))}},
            "/v1/journal/stats": {"get": {"operationId": "journalStats", "summary": "Journal numbers and the last recovery",
                "responses": ok("200", "stats", "JournalStats")}},
            "/v1/journal/verify": {"get": {"operationId": "verifyJournal", "summary": "Check every record and checkpoint",
                "responses": merge(ok("200", "report", "VerifyReport"), err_responses(&["500", "503"]))}},
            "/v1/images": {"get": {"operationId": "listImages", "summary": "List images", "parameters": [ns_param()],
                "responses": merge(ok("200", "images", "ImageList"), err_responses(&["400"]))}},
            "/v1/images/import": {"post": {"operationId": "importImage",
                "summary": "Import an OCI image-layout archive or a docker save archive (streamed body); unpacks for the platform",
                "parameters": [ns_param(),
                    {"name": "name", "in": "query", "schema": {"type": "string"}, "description": "name for the image (required when the archive names none)"},
                    {"name": "platform", "in": "query", "schema": {"type": "string"}, "description": "os/arch[/variant] to unpack (default: host)"}],
                "requestBody": {"required": true, "content": {"application/x-tar": {"schema": {"type": "string", "format": "binary"}}}},
                "responses": merge(ok("201", "imported", "ImportResponse"), std_errors.clone())}},
            "/v1/images/pull": {"post": {"operationId": "pullImage",
                "summary": "Pull an image from a registry (the platform's manifest, unpacked) and name it after the reference; two requests for the same reference share one pull",
                "parameters": [ns_param(),
                    {"name": "stream", "in": "query", "schema": {"type": "boolean"}, "description": "answer newline-delimited JSON progress ({status: started|resolved|layer_done|unpacking}, {layer, current, total}) ending with {status: completed, …PullImageResponse} or {error: {kind, message}}"},
                    {"name": "wait", "in": "query", "schema": {"type": "boolean"}, "description": "answer 200 with the result once the pull has ended"}],
                "requestBody": json_body("PullImageRequest"),
                "responses": merge(merge(ok("202", "started: progress (pull.progress notices) and outcome (pull.completed / pull.failed) follow on /v1/events", "PullAccepted"),
                    ok("200", "pulled (wait=true), or application/x-ndjson progress (stream=true)", "PullImageResponse")), std_errors.clone())}},
            "/v1/images/{name}/push": {"post": {"operationId": "pushImage",
                "summary": "Push an image to a registry: blobs the registry lacks (mounted from the image's repository on the same registry when possible), then manifests and the index",
                "parameters": [image_param(), ns_param()],
                "requestBody": json_body("PushImageRequest"),
                "responses": merge(ok("200", "pushed", "PushImageResponse"), std_errors.clone())}},
            "/v1/images/{name}": {
                "get": {"operationId": "inspectImage", "summary": "An image and what it resolves to on this host", "parameters": [image_param(), ns_param()],
                    "responses": merge(ok("200", "image", "ImageInspect"), std_errors.clone())},
                "delete": {"operationId": "deleteImage", "summary": "Remove an image name; unreferenced content and snapshots are collected", "parameters": [image_param(), ns_param()],
                    "responses": merge(ok("200", "deleted", "Deleted"), std_errors.clone())}
            },
            "/v1/images/{name}/tag": {"post": {"operationId": "tagImage", "summary": "Give an image another name", "parameters": [image_param(), ns_param()],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TagRequest"}}}},
                "responses": merge(ok("201", "tagged", "Image"), std_errors.clone())}},
            "/v1/images/{name}/export": {"get": {"operationId": "exportImage", "summary": "The image as an OCI image-layout tar (streamed)", "parameters": [image_param(), ns_param()],
                "responses": merge(json!({"200": {"description": "OCI archive", "content": {"application/x-tar": {"schema": {"type": "string", "format": "binary"}}}}}), std_errors.clone())}},
            "/v1/snapshots": {"get": {"operationId": "listSnapshots", "summary": "List snapshots", "parameters": [ns_param()],
                "responses": merge(ok("200", "snapshots", "SnapshotList"), err_responses(&["400"]))}},
            "/v1/content": {"get": {"operationId": "listContent", "summary": "List blobs",
                "responses": ok("200", "blobs", "ContentList")}},
            "/v1/content/{digest}": {"get": {"operationId": "getBlob", "summary": "A blob's bytes",
                "parameters": [{"name": "digest", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": merge(json!({"200": {"description": "blob", "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}), err_responses(&["400", "404"]))}},
            "/v1/content/{digest}/labels": {"put": {"operationId": "setBlobLabels", "summary": "Replace a blob's labels",
                "parameters": [{"name": "digest", "in": "path", "required": true, "schema": {"type": "string"}}, ns_param()],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["labels"], "additionalProperties": false,
                    "properties": {"labels": {"$ref": "#/components/schemas/Labels"}}}}}},
                "responses": merge(json!({"200": {"description": "the blob", "content": {"application/json": {"schema": {"type": "object"}}}}}), err_responses(&["400", "404"]))}},
            "/v1/gc": {"post": {"operationId": "collectGarbage", "summary": "Remove unreferenced content and snapshots (leases protect work in flight)", "parameters": [ns_param()],
                "responses": merge(ok("200", "collected", "GcReport"), err_responses(&["400", "503"]))}},
            "/v1/system/df": {"get": {"operationId": "diskUsage", "summary": "Disk usage of images, content and snapshots",
                "responses": ok("200", "usage", "Df")}},
            "/v1/journal/checkpoint": {"post": {"operationId": "checkpoint", "summary": "Checkpoint the state now",
                "responses": merge(ok("200", "checkpoint taken", "CheckpointTaken"), err_responses(&["409", "503"]))}}
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "required on TCP listeners only"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["kind", "message"],
                    "properties": {"kind": {"type": "string", "enum": ["NotFound", "AlreadyExists", "FailedPrecondition", "InvalidArgument", "Unavailable", "Internal", "Unauthenticated"]}, "message": {"type": "string"}}}}},
                "Version": {"type": "object", "properties": {"version": {"type": "string"}, "api_version": {"type": "string"}, "os": {"type": "string"}, "arch": {"type": "string"}}},
                "Health": {"type": "object", "properties": {"status": {"type": "string"}, "seq": {"type": "integer", "format": "int64"}}},
                "Labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "CreateNamespace": {"type": "object", "required": ["name"], "additionalProperties": false,
                    "properties": {"name": {"type": "string", "pattern": "^[A-Za-z0-9]+([._-][A-Za-z0-9]+)*$", "maxLength": 76}, "labels": {"$ref": "#/components/schemas/Labels"}}},
                "Namespace": {"type": "object", "properties": {"name": {"type": "string"}, "labels": {"$ref": "#/components/schemas/Labels"}, "created_at": {"type": "string", "format": "date-time"}}},
                "NamespaceResponse": {"type": "object", "properties": {"namespace": {"$ref": "#/components/schemas/Namespace"}, "seq": {"type": "integer", "format": "int64"}}},
                "NamespaceList": {"type": "object", "properties": {"namespaces": {"type": "array", "items": {"$ref": "#/components/schemas/Namespace"}}, "seq": {"type": "integer", "format": "int64"}}},
                "Deleted": {"type": "object", "properties": {"deleted": {"type": "string"}, "seq": {"type": "integer", "format": "int64"}}},
                "EventEnvelope": {"type": "object", "properties": {
                    "seq": {"type": "integer", "format": "int64"}, "at": {"type": "string", "format": "date-time"},
                    "namespace": {"type": "string"}, "stream": {"type": "object", "properties": {"kind": {"type": "string"}, "id": {"type": "string"}}},
                    "topic": {"type": "string"}, "schema": {"type": "integer"}, "event": {"type": "object"}}},
                "JournalPage": {"type": "object", "properties": {"records": {"type": "array", "items": {"$ref": "#/components/schemas/EventEnvelope"}},
                    "next": {"type": "integer", "format": "int64"}, "last_seq": {"type": "integer", "format": "int64"}}},
                "JournalStats": {"type": "object", "properties": {"stats": {"type": "object"}, "recovery": {"type": "object"}}},
                "VerifyReport": {"type": "object", "properties": {"checked": {"type": "integer"}, "first_seq": {"type": "integer"}, "last_seq": {"type": "integer"},
                    "checkpoints_checked": {"type": "integer"}, "problems": {"type": "array", "items": {"type": "object", "properties": {"seq": {"type": "integer"}, "reason": {"type": "string"}}}}}},
                "Target": {"type": "object", "properties": {"media_type": {"type": "string"}, "digest": {"type": "string"}, "size": {"type": "integer"}}},
                "Image": {"type": "object", "properties": {"name": {"type": "string"}, "target": {"$ref": "#/components/schemas/Target"},
                    "labels": {"$ref": "#/components/schemas/Labels"}, "created_at": {"type": "string", "format": "date-time"}, "updated_at": {"type": "string", "format": "date-time"}}},
                "ImageList": {"type": "object", "properties": {"images": {"type": "array", "items": {"$ref": "#/components/schemas/Image"}}, "seq": {"type": "integer"}}},
                "ImageInspect": {"type": "object", "properties": {"image": {"$ref": "#/components/schemas/Image"}, "manifest": {"type": "string"}, "config": {"type": "string"},
                    "platform": {"type": "string"}, "layers": {"type": "array", "items": {"type": "string"}}, "diff_ids": {"type": "array", "items": {"type": "string"}},
                    "chain_ids": {"type": "array", "items": {"type": "string"}}, "unpacked": {"type": "boolean"}, "size": {"type": "integer"}, "config_json": {"type": "object"}}},
                "ImportResponse": {"type": "object", "properties": {"id": {"type": "string"}, "images": {"type": "array", "items": {"$ref": "#/components/schemas/Image"}}, "seq": {"type": "integer"}}},
                "RegistryAuth": {"type": "object", "required": ["username", "password"], "additionalProperties": false,
                    "properties": {"username": {"type": "string"}, "password": {"type": "string"}}},
                "PullImageRequest": {"type": "object", "required": ["ref"], "additionalProperties": false, "properties": {
                    "ref": {"type": "string", "description": "host[:port]/repo[:tag][@sha256:…]"},
                    "platform": {"type": "string", "description": "os/arch[/variant] (default: host)"},
                    "auth": {"$ref": "#/components/schemas/RegistryAuth"}}},
                "PullAccepted": {"type": "object", "properties": {"pull_id": {"type": "string"}, "reference": {"type": "string"}}},
                "PullImageResponse": {"type": "object", "properties": {"image": {"type": "string"}, "digest": {"type": "string"}, "pull_id": {"type": "string"}, "seq": {"type": "integer", "format": "int64"}}},
                "PushImageRequest": {"type": "object", "additionalProperties": false, "properties": {
                    "target": {"type": "string", "description": "host[:port]/repo[:tag] (default: the image's name)"},
                    "auth": {"$ref": "#/components/schemas/RegistryAuth"}}},
                "PushImageResponse": {"type": "object", "properties": {"image": {"type": "string"}, "target": {"type": "string"}, "digest": {"type": "string"},
                    "uploaded": {"type": "integer"}, "mounted": {"type": "integer"}, "existing": {"type": "integer"}}},
                "TagRequest": {"type": "object", "required": ["target"], "additionalProperties": false, "properties": {"target": {"type": "string"}}},
                "SnapshotList": {"type": "object", "properties": {"snapshots": {"type": "array", "items": {"type": "object", "properties": {
                    "key": {"type": "string"}, "parent": {"type": "string", "nullable": true}, "kind": {"type": "string", "enum": ["active", "view", "committed"]},
                    "id": {"type": "integer"}, "snapshotter": {"type": "string"}, "labels": {"$ref": "#/components/schemas/Labels"},
                    "created_at": {"type": "string", "format": "date-time"}, "size": {"type": "integer"}, "inodes": {"type": "integer"}}}}, "seq": {"type": "integer"}}},
                "ContentList": {"type": "object", "properties": {"content": {"type": "array", "items": {"type": "object", "properties": {
                    "digest": {"type": "string"}, "size": {"type": "integer"}, "labels": {"$ref": "#/components/schemas/Labels"}, "committed_at": {"type": "string", "format": "date-time"}}}}, "seq": {"type": "integer"}}},
                "GcReport": {"type": "object", "properties": {"content_removed": {"type": "integer"}, "snapshots_removed": {"type": "integer"}, "bytes_freed": {"type": "integer"}, "took_ms": {"type": "integer"}}},
                "DfLine": {"type": "object", "properties": {"count": {"type": "integer"}, "size": {"type": "integer"}, "reclaimable": {"type": "integer"}}},
                "Df": {"type": "object", "properties": {"images": {"$ref": "#/components/schemas/DfLine"}, "content": {"$ref": "#/components/schemas/DfLine"}, "snapshots": {"$ref": "#/components/schemas/DfLine"}}},
                "CheckpointTaken": {"type": "object", "properties": {"seq": {"type": "integer", "format": "int64"}}}
            }
        }
    });
    if let Some(paths) = doc["paths"].as_object_mut() {
        paths.extend(containers.as_object().cloned().unwrap_or_default());
        paths.extend(networks.as_object().cloned().unwrap_or_default());
    }
    if let Some(schemas) = doc["components"]["schemas"].as_object_mut() {
        schemas.extend(container_schemas().as_object().cloned().unwrap_or_default());
        schemas.extend(network_schemas().as_object().cloned().unwrap_or_default());
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::ROUTES;

    #[test]
    fn document_lists_exactly_the_routes() {
        let doc = document();
        let mut documented: Vec<(String, String)> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, ops)| {
                ops.as_object()
                    .unwrap()
                    .keys()
                    .map(move |m| (m.clone(), path.clone()))
            })
            .collect();
        documented.sort();
        let mut routed: Vec<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        routed.sort();
        assert_eq!(documented, routed);
        // every $ref resolves
        let text = doc.to_string();
        for piece in text.split("#/components/schemas/").skip(1) {
            let name: String = piece.chars().take_while(|c| c.is_alphanumeric()).collect();
            assert!(doc["components"]["schemas"].get(&name).is_some(), "{name}");
        }
    }
}
