//! The Workspace ONE simulator on its own, over raw HTTP on loopback: its answers have the
//! shapes of the saved real bodies and the recorded exchange, its rules (auth, versions,
//! substring search, PATCH refusals, 204, HTML 404, quota) hold, and its admin routes,
//! seed files and shutdown work as documented.

use std::collections::BTreeSet;
use std::time::Duration;

use badgedock::uemsim::{self, parse_fault, SimOptions};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::mdm::uem_support::*;

const TENANT: &str = "SIMTENANT4WEST";
const ADMIN: &str = "api-admin";
const PASSWORD: &str = "sim-basic-password-4west";

/// A raw Basic-auth API call; returns status, headers and body.
async fn call(
    base: &str,
    method: Method,
    path: &str,
    version: Option<u8>,
) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .basic_auth(ADMIN, Some(PASSWORD))
        .header("aw-tenant-code", TENANT);
    if let Some(version) = version {
        request = request.header("accept", format!("application/json;version={version}"));
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, response.bytes().await.unwrap().to_vec())
}

fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap()
}

fn keys(value: &Value) -> BTreeSet<String> {
    value.as_object().unwrap().keys().cloned().collect()
}

#[tokio::test]
async fn a_device_has_every_key_of_the_saved_real_body() {
    let sim = sim().await;
    let (status, _, body) = call(
        &sim.url(),
        Method::GET,
        "/API/mdm/devices/search?user=staging",
        Some(1),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let ours = json(&body);
    let saved = fixture_json("devices_search_v1_response.json");
    assert_eq!(keys(&ours), keys(&saved), "Devices, Page, PageSize, Total");
    let missing: Vec<String> = keys(&saved["Devices"][0])
        .difference(&keys(&ours["Devices"][0]))
        .cloned()
        .collect();
    assert!(
        missing.is_empty(),
        "keys of the real device body missing from the simulator's: {missing:?}"
    );
    assert!(ours["Devices"][0]["Id"]["Value"].is_i64());
    assert!(ours["Devices"][0]["UserId"]["Id"]["Value"].is_i64());

    let (_, _, single) = call(&sim.url(), Method::GET, "/API/mdm/devices/101", None).await;
    let single = json(&single);
    assert!(
        !keys(&single).contains("EasIds"),
        "search-only keys stay in searches"
    );
    assert_eq!(single["Udid"], UDID_101);
}

#[tokio::test]
async fn headers_match_the_recorded_saas_exchange() {
    let sim = sim().await;
    let recorded = fixture_json("recorded_saas_exchange_2023.json");
    let recorded_ok = &recorded["entries"][0]["response"]["headers"];
    let wanted: Vec<String> = keys(recorded_ok)
        .into_iter()
        .filter(|name| {
            name.starts_with("x-")
                || name.starts_with("api-")
                || name == "content-type"
                || name == "strict-transport-security"
        })
        .collect();
    let (status, headers, _) = call(
        &sim.url(),
        Method::GET,
        "/API/system/users/search?username=alice",
        Some(2),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    for name in &wanted {
        assert!(
            headers.contains_key(name.as_str()),
            "{name} missing: {headers:?}"
        );
    }
    assert_eq!(headers["x-api-version"], "v2");
    assert_eq!(
        headers["content-type"],
        recorded_ok["content-type"].as_str().unwrap()
    );
    let remaining: u64 = headers["x-ratelimit-remaining"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let (_, again, _) = call(
        &sim.url(),
        Method::GET,
        "/API/system/users/search?username=alice",
        Some(2),
    )
    .await;
    let after: u64 = again["x-ratelimit-remaining"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(after, remaining - 1, "falling by one per call");

    // The recorded empty device search: 204, no body.
    let recorded_empty = &recorded["entries"][3]["response"];
    assert_eq!(recorded_empty["status"], 204);
    let (status, headers, body) = call(
        &sim.url(),
        Method::GET,
        "/API/mdm/devices/search?user=nobody-at-all",
        Some(2),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(body.is_empty());
    assert!(headers.contains_key("x-correlation-id"));
}

#[tokio::test]
async fn auth_errors_have_the_saved_shapes() {
    let sim = sim().await;
    let base = sim.url();
    let http = reqwest::Client::new();

    let wrong_password = http
        .get(format!("{base}/API/mdm/devices/101"))
        .basic_auth(ADMIN, Some("nope"))
        .header("aw-tenant-code", TENANT)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_password.status(), StatusCode::UNAUTHORIZED);
    let ours = json(&wrong_password.bytes().await.unwrap());
    let saved = fixture_json("error_401_invalid_credentials.json");
    assert_eq!(keys(&ours), keys(&saved));
    assert_eq!(ours["errorCode"], saved["errorCode"]);
    let prefix = saved["message"]
        .as_str()
        .unwrap()
        .split(" : ")
        .next()
        .unwrap();
    assert_eq!(ours["message"], format!("{prefix} : {ADMIN}"));

    let wrong_tenant = http
        .get(format!("{base}/API/mdm/devices/101"))
        .basic_auth(ADMIN, Some(PASSWORD))
        .header("aw-tenant-code", "XYZ")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_tenant.status(), StatusCode::FORBIDDEN);
    let ours = json(&wrong_tenant.bytes().await.unwrap());
    let saved = fixture_json("error_403_invalid_tenant_code.json");
    assert_eq!(keys(&ours), keys(&saved));
    assert_eq!(
        (&ours["errorCode"], &ours["message"]),
        (&saved["errorCode"], &saved["message"])
    );

    let no_auth = http
        .get(format!("{base}/API/mdm/devices/101"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_auth.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn tokens_are_issued_accepted_with_or_without_tenant_code_and_expire() {
    let sim = sim_with(SimOptions {
        token_lifetime: Duration::from_secs(2),
        ..SimOptions::default()
    })
    .await;
    let http = reqwest::Client::new();
    let token_url = sim.token_url();
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "badgedock-demo"),
        ("client_secret", "sim-client-secret-4west"),
    ];
    let answer = json(
        &http
            .post(&token_url)
            .form(&form)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    );
    assert_eq!(answer["token_type"], "Bearer");
    assert_eq!(answer["expires_in"], 2);
    let token = answer["access_token"].as_str().unwrap().to_string();

    // Client id and secret as HTTP Basic are accepted too.
    let basic = http
        .post(&token_url)
        .basic_auth("badgedock-demo", Some("sim-client-secret-4west"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::OK);

    let bad = http
        .post(&token_url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "badgedock-demo"),
            ("client_secret", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json(&bad.bytes().await.unwrap())["error"], "invalid_client");

    let url = format!("{}/API/mdm/devices/101", sim.url());
    let with_tenant = http
        .get(&url)
        .bearer_auth(&token)
        .header("aw-tenant-code", TENANT)
        .send()
        .await
        .unwrap();
    assert_eq!(with_tenant.status(), StatusCode::OK);
    let without = http.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(without.status(), StatusCode::OK);
    let wrong_tenant = http
        .get(&url)
        .bearer_auth(&token)
        .header("aw-tenant-code", "NOPE")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_tenant.status(), StatusCode::FORBIDDEN);

    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let expired = http.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
    assert!(expired.headers().contains_key("www-authenticate"));
    assert!(expired.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn parameter_names_and_values_ignore_case_but_udids_keep_their_hyphen() {
    let sim = sim().await;
    let base = sim.url();
    let lower = UDID_101.to_ascii_lowercase();
    for path in [
        format!("/API/mdm/devices?searchby=Udid&id={UDID_101}"),
        format!("/api/mdm/devices?SearchBy=UDID&ID={lower}"),
        format!("/Api/Mdm/Devices?searchBy=udid&id={UDID_101}"),
        "/API/mdm/devices?searchby=serialnumber&id=r58n12abcde".to_string(),
        format!("/API/mdm/devices/udid/{UDID_101}"),
    ] {
        let (status, _, body) = call(&base, Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(json(&body)["Id"]["Value"].is_i64(), "{path}");
    }
    let compact = UDID_101.replace('-', "");
    let (status, _, body) = call(
        &base,
        Method::GET,
        &format!("/API/mdm/devices?searchby=Udid&id={compact}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(json(&body), {
        let mut saved = fixture_json("error_404_device_not_found.json");
        saved["activityId"] = json(&body)["activityId"].clone();
        saved
    });
    let (status, _, _) = call(
        &base,
        Method::GET,
        "/API/mdm/devices?searchby=Colour&id=x",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_user_search_is_a_case_insensitive_substring_search() {
    let sim = sim().await;
    let names = |body: &[u8]| -> Vec<String> {
        json(body)["Users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["UserName"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, _, body) = call(
        &sim.url(),
        Method::GET,
        "/API/system/users/search?username=ALI",
        None,
    )
    .await;
    assert_eq!(names(&body), vec!["alice", "alice2", "m.alice"]);
    let (_, _, body) = call(
        &sim.url(),
        Method::GET,
        "/API/system/users/search?username=bob",
        None,
    )
    .await;
    let bobs = json(&body);
    assert_eq!(bobs["Total"], 2);
    let ids: Vec<i64> = bobs["Users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["Id"]["Value"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![1004, 1005]);
    let (status, _, body) = call(
        &sim.url(),
        Method::GET,
        "/API/system/users/search?username=zzz",
        None,
    )
    .await;
    assert_eq!((status, body.len()), (StatusCode::NO_CONTENT, 0));
    let (_, _, body) = call(
        &sim.url(),
        Method::GET,
        "/API/system/users/search?username=a&pagesize=2&page=1",
        None,
    )
    .await;
    let page = json(&body);
    assert_eq!(page["Page"], 1);
    assert_eq!(page["Users"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn the_enrolment_user_patch_needs_version_2_and_updates_the_user_fields() {
    let sim = sim().await;
    let base = sim.url();
    let (status, _, body) = call(
        &base,
        Method::PATCH,
        "/API/mdm/devices/101/enrollmentuser/1001",
        Some(1),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json(&body)["error"]["code"], "UnsupportedApiVersion");
    let (status, _, _) = call(
        &base,
        Method::PATCH,
        "/API/mdm/devices/101/enrollmentuser/1001",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no version means v1");

    let (_, _, before) = call(&base, Method::GET, "/API/mdm/devices/101", None).await;
    let (status, headers, body) = call(
        &base,
        Method::PATCH,
        "/API/mdm/devices/101/enrollmentuser/1001",
        Some(2),
    )
    .await;
    assert_eq!((status, body.len()), (StatusCode::OK, 0));
    assert_eq!(headers["api-supported-versions"], "2");
    let (_, _, after) = call(&base, Method::GET, "/API/mdm/devices/101", None).await;
    let (before, after) = (json(&before), json(&after));
    assert_eq!(after["UserName"], "alice");
    assert_eq!(after["UserId"]["Id"]["Value"], 1001);
    assert_eq!(after["UserEmailAddress"], "alice@hospital.example");
    for field in ["UserName", "UserEmailAddress", "EnrollmentUserUuid"] {
        assert_ne!(before[field], after[field], "{field}");
    }

    for (path, status, error_code) in [
        ("/API/mdm/devices/999/enrollmentuser/1001", 404, 5061),
        ("/API/mdm/devices/101/enrollmentuser/999", 404, 404),
        ("/API/mdm/devices/201/enrollmentuser/1001", 400, 400),
        ("/API/mdm/devices/106/enrollmentuser/1001", 400, 400),
    ] {
        let (got, headers, body) = call(&base, Method::PATCH, path, Some(2)).await;
        assert_eq!(got.as_u16(), status, "{path}");
        assert!(headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"));
        assert_eq!(json(&body)["errorCode"], error_code, "{path}");
    }
    let patch = sim
        .journal()
        .into_iter()
        .find(|e| e.method == "PATCH" && e.status == 200)
        .unwrap();
    assert_eq!(
        (patch.device_id, patch.user_id, patch.api_version),
        (Some(101), Some(1001), Some(2))
    );
}

#[tokio::test]
async fn commands_by_id_and_by_alternate_id() {
    let sim = sim().await;
    let base = sim.url();
    let (status, _, body) = call(
        &base,
        Method::POST,
        "/API/mdm/devices/101/commands?command=DeviceQuery",
        None,
    )
    .await;
    assert_eq!((status, body.len()), (StatusCode::ACCEPTED, 0));
    let (status, _, _) = call(
        &base,
        Method::POST,
        "/API/mdm/devices/commands?command=lock&searchby=Serialnumber&id=R58N12ABCDE",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(sim.device(201).unwrap().commands, vec!["Lock"]);
    let (status, _, _) = call(
        &base,
        Method::POST,
        "/API/mdm/devices/101/commands?command=SelfDestruct",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = call(
        &base,
        Method::POST,
        "/API/mdm/devices/101/commands?command=DeviceWipe",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        sim.device(101).unwrap().enrollment_status,
        "DeviceWipePending"
    );
    let (status, _, _) = call(&base, Method::DELETE, "/API/mdm/devices/101/commands", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn unknown_routes_get_an_html_page_like_the_saved_one() {
    let sim = sim().await;
    let saved = String::from_utf8(fixture("error_404_unknown_route.html")).unwrap();
    for path in ["/API/mdm/nothing/here", "/favicon.ico"] {
        let (status, headers, body) = call(&sim.url(), Method::GET, path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        let page = String::from_utf8(body).unwrap();
        for needle in [
            "<title>The resource cannot be found.</title>",
            "Server Error in '/",
            "HTTP 404.",
        ] {
            assert!(saved.contains(needle) && page.contains(needle), "{needle}");
        }
    }
}

#[tokio::test]
async fn a_spent_quota_answers_429_with_retry_after() {
    let sim = sim().await;
    sim.set_rate_limit(2, 1, Duration::from_secs(30));
    let (status, headers, _) = call(&sim.url(), Method::GET, "/API/mdm/devices/101", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-ratelimit-remaining"], "0");
    let (status, headers, _) = call(&sim.url(), Method::GET, "/API/mdm/devices/101", None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let wait: i64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&wait), "{wait}");
}

#[tokio::test]
async fn a_tenant_over_its_per_second_rate_is_throttled_with_retry_after() {
    // Three calls per second, tenant-wide: a burst of ten gets three answers and then
    // 429s that say when to come back; the daily quota counts only the answered calls.
    let sim = uemsim::start(SimOptions {
        per_second: Some(3),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut answered = 0;
    let mut throttled = Vec::new();
    for _ in 0..10 {
        let (status, headers, _) =
            call(&sim.url(), Method::GET, "/API/mdm/devices/101", None).await;
        if status == StatusCode::OK {
            answered += 1;
        } else {
            assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
            let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
            throttled.push(wait);
        }
    }
    assert!((3..10).contains(&answered), "{answered} answered");
    assert!(throttled.iter().all(|wait| *wait >= 1), "{throttled:?}");
    let journal = sim.journal();
    let marked = journal
        .iter()
        .filter(|entry| entry.fault.as_deref() == Some("throttle"))
        .count();
    assert_eq!(marked, throttled.len());
}

#[tokio::test]
async fn admin_routes_set_faults_and_show_the_journal_and_state() {
    let sim = sim().await;
    let base = sim.url();
    let http = reqwest::Client::new();
    let added = http
        .post(format!("{base}/_sim/faults"))
        .json(&["500:1@/API/mdm", "429-retry-after:3@/API/system"])
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), StatusCode::OK);
    let state: Value = http
        .get(format!("{base}/_sim/state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        state["faults"],
        serde_json::json!(["500:1@/API/mdm", "429-retry-after:3:1@/API/system"])
    );
    assert_eq!(state["devices"].as_array().unwrap().len(), 9);

    let (status, _, _) = call(
        &base,
        Method::GET,
        "/API/system/users/search?username=alice",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let (status, _, _) = call(&base, Method::GET, "/API/mdm/devices/101", None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let (status, _, _) = call(&base, Method::GET, "/API/mdm/devices/101", None).await;
    assert_eq!(status, StatusCode::OK);

    let journal: Vec<Value> = http
        .get(format!("{base}/_sim/journal"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let faults: Vec<&str> = journal.iter().filter_map(|e| e["fault"].as_str()).collect();
    assert_eq!(faults, vec!["429-retry-after:3", "500"]);
    let last_seq = journal.last().unwrap()["seq"].as_u64().unwrap();
    let since: Vec<Value> = http
        .get(format!("{base}/_sim/journal?since={}", last_seq - 1))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(since.len(), 1);
    assert_eq!(since[0]["device-id"], 101);

    let bad = http
        .post(format!("{base}/_sim/faults"))
        .json(&["explode"])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert!(bad.text().await.unwrap().contains("is not a fault"));

    http.post(format!("{base}/_sim/faults"))
        .json(&["outage:60s"])
        .send()
        .await
        .unwrap();
    let (status, _, _) = call(&base, Method::GET, "/API/mdm/devices/101", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let cleared = http
        .delete(format!("{base}/_sim/faults"))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), StatusCode::NO_CONTENT);
    let (status, _, _) = call(&base, Method::GET, "/API/mdm/devices/101", None).await;
    assert_eq!(status, StatusCode::OK);

    let rate: Value = http
        .post(format!("{base}/_sim/ratelimit"))
        .json(&serde_json::json!({"limit": 100, "remaining": 7}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rate["remaining"], 7);
    let device: Value = http
        .get(format!("{base}/_sim/devices/201"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(device["serial-number"], SERIAL_201);
    http.delete(format!("{base}/_sim/journal"))
        .send()
        .await
        .unwrap();
    assert!(sim.journal().is_empty());
}

#[tokio::test]
async fn seed_files_are_loaded_and_bad_ones_refused_with_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("seed.json");
    std::fs::write(
        &good,
        badgedock::uemsim::DEFAULT_SEED_JSON.replace("4W iPhone 01", "Ward 9 iPhone"),
    )
    .unwrap();
    let sim = sim_with(SimOptions {
        seed: Some(good),
        ..SimOptions::default()
    })
    .await;
    assert_eq!(sim.device(101).unwrap().name, "Ward 9 iPhone");
    assert_eq!(sim.users_named("bob").len(), 2);
    assert_eq!(
        sim.find_device(&UDID_101.replace('-', "").to_ascii_lowercase())
            .unwrap()
            .id,
        101
    );

    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"devices":[{"id":1,"platform":"apple","serial-number":"x","user-id":5}]}"#,
    )
    .unwrap();
    let err = uemsim::start(SimOptions {
        seed: Some(bad),
        ..SimOptions::default()
    })
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("without a udid") && err.contains("user-id 5"),
        "{err}"
    );
}

#[tokio::test]
async fn serve_stops_on_its_shutdown_future_even_with_a_call_hanging() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = SimOptions {
        faults: vec![parse_fault("timeout:1@/API").unwrap()],
        latency_ms: 5,
        ..SimOptions::default()
    };
    let server = tokio::spawn(uemsim::serve(listener, options, async move {
        let _ = stopped.await;
    }));
    let base = format!("http://{addr}");
    let hanging = tokio::spawn(async move {
        call(&base, Method::GET, "/API/mdm/devices/101", None)
            .await
            .0
    });
    // Wait until the hanging call has reached the simulator.
    let http = reqwest::Client::new();
    loop {
        let journal: Vec<Value> = http
            .get(format!("http://{addr}/_sim/journal"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if journal.iter().any(|e| e["fault"] == "timeout") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    assert_eq!(hanging.await.unwrap(), StatusCode::GATEWAY_TIMEOUT);
}
