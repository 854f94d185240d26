//! The Workspace ONE client against the simulator over loopback: every endpoint, every
//! fault class, the exact-user rule, token renewal, the single 401 retry, odd error
//! bodies, secrets kept out of errors; and every saved real body parses with the
//! client's readers.

#[path = "support/uem.rs"]
pub mod uem_support;

use std::time::Duration;

use badgedock::checkout::{DeviceCommand, MdmAction};
use badgedock::config::UemAuth;
use badgedock::domain::{DeviceKey, Platform, Secret, Username};
use badgedock::mdm::model::{DeviceSearchV1, DeviceV1, UserSearchV1};
use badgedock::mdm::{ApiErrorBody, BodyKind, ErrorClass, Mdm, MdmError, UemClient};
use badgedock::uemsim::{parse_fault, Fault, SimOptions};

use uem_support::*;

fn fault(text: &str) -> Fault {
    parse_fault(text).unwrap()
}

fn user(name: &str) -> Username {
    Username::new(name)
}

fn assign(name: &str) -> MdmAction {
    MdmAction::AssignUser {
        username: user(name),
    }
}

/// Every error's Display and Debug, for the secret checks.
fn texts(err: &MdmError) -> String {
    format!("{err} {err:?}")
}

#[test]
fn every_saved_body_parses_with_the_clients_readers() {
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(fixture_dir()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name == "SOURCES.md" {
            continue;
        }
        let body = fixture(&name);
        match name.as_str() {
            "devices_search_v1_response.json" => {
                let search: DeviceSearchV1 = serde_json::from_slice(&body).unwrap();
                assert_eq!(search.devices.len(), 2);
                assert_eq!(search.total, Some(2));
                let info = search.devices[0].to_info().unwrap();
                assert_eq!(info.mdm_id, 5614);
                assert_eq!(info.enrollment_user, Some(user("user123")));
                assert!(!info.wipe_pending);
                assert_eq!(
                    search.devices[0]
                        .user_id
                        .as_ref()
                        .and_then(|u| u.id)
                        .map(|id| id.value),
                    Some(111111)
                );
            }
            "device_get_by_uuid_v2_response.json" => {
                // v2 is camelCase: the v1 reader finds no Id, and says so instead of failing.
                let device: DeviceV1 = serde_json::from_slice(&body).unwrap();
                assert_eq!(device.to_info(), None);
                let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(value["enrollmentInfo"]["userName"], "user123-laptop2");
            }
            "error_401_invalid_credentials.json" => {
                let parsed = ApiErrorBody::parse(&body);
                assert_eq!(
                    (parsed.kind, parsed.error_code),
                    (BodyKind::Json, Some(1005))
                );
                assert!(parsed.message.contains("user not found"));
                assert!(parsed.activity_id.is_some());
            }
            "error_403_invalid_tenant_code.json" => {
                let parsed = ApiErrorBody::parse(&body);
                assert_eq!(parsed.error_code, Some(1013));
                assert!(parsed.message.starts_with("Tenant code"));
            }
            "error_404_device_not_found.json" => {
                let parsed = ApiErrorBody::parse(&body);
                assert_eq!(parsed.error_code, Some(5061));
                assert_eq!(parsed.message, "Device not found for this request.");
            }
            "error_404_bulk_devices_not_found.json" => {
                assert_eq!(ApiErrorBody::parse(&body).error_code, Some(404));
            }
            "error_404_unknown_route.html" => {
                let parsed = ApiErrorBody::parse(&body);
                assert_eq!(parsed.kind, BodyKind::Html);
                assert!(
                    parsed.message.contains("The resource cannot be found."),
                    "{parsed:?}"
                );
            }
            "commands_bulk_response_success.json" | "commands_bulk_response_partial_fault.json" => {
                let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
                assert!(value["TotalItems"].as_i64().unwrap() >= 1);
                assert_eq!(ApiErrorBody::parse(&body).kind, BodyKind::Json);
            }
            "recorded_saas_exchange_2023.json" => {
                let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
                let entries = value["entries"].as_array().unwrap();
                assert_eq!(entries.len(), 4);
                for entry in entries {
                    let response = &entry["response"];
                    if response["status"] == 204 {
                        assert!(response["body"].is_null());
                        // What the client makes of an empty device search body.
                        assert_eq!(ApiErrorBody::parse(b"").kind, BodyKind::Empty);
                    } else {
                        assert_eq!(response["status"], 200);
                        assert!(!response["body"].is_null());
                    }
                }
            }
            other => panic!("{other} is in tests/fixtures/ws1 but no test reads it"),
        }
        seen.push(name);
    }
    assert_eq!(seen.len(), 10, "{seen:?}");
}

#[test]
fn user_search_body_reader_keeps_every_match() {
    let body = br#"{"Users":[{"UserName":"alice","Status":true,"Id":{"Value":1}},{"UserName":"alice2","Id":{"Value":2}}],"Page":0,"PageSize":500,"Total":2}"#;
    let search: UserSearchV1 = serde_json::from_slice(body).unwrap();
    assert_eq!(search.users.len(), 2);
    assert_eq!(search.users[1].id.map(|id| id.value), Some(2));
}

#[tokio::test]
async fn device_lookup_by_udid_in_both_spellings_and_by_serial() {
    let sim = sim().await;
    let client = client(&oauth_config(&sim));

    let modern = client.lookup_device(&apple(UDID_101)).await.unwrap();
    assert_eq!(modern.mdm_id, 101);
    assert_eq!(modern.name, "4W iPhone 01");
    assert_eq!(modern.enrollment_user, Some(user("staging-4west")));
    assert!(!modern.wipe_pending);

    // A key written without the hyphen still finds the hyphenated UDID.
    let raw = DeviceKey {
        platform: Platform::Apple,
        id: UDID_102.replace('-', ""),
    };
    assert_eq!(client.lookup_device(&raw).await.unwrap().mdm_id, 102);

    let old = client.lookup_device(&apple(UDID_104_OLD)).await.unwrap();
    assert_eq!(old.mdm_id, 104);

    let android = client
        .lookup_device(&DeviceKey::android(SERIAL_201))
        .await
        .unwrap();
    assert_eq!(android.mdm_id, 201);

    let searches: Vec<String> = api_calls(&sim).iter().map(|e| e.path.clone()).collect();
    assert!(
        searches.iter().any(|p| p.contains("searchby=Udid")),
        "{searches:?}"
    );
    assert!(
        searches
            .iter()
            .any(|p| p.contains("searchby=Serialnumber&id=R58N12ABCDE")),
        "{searches:?}"
    );

    let missing = client
        .lookup_device(&DeviceKey::android("NOSUCHSERIAL"))
        .await
        .unwrap_err();
    assert!(
        matches!(missing, MdmError::DeviceNotFound { .. }),
        "{missing:?}"
    );
    assert_eq!(missing.class(), ErrorClass::Rejected);
    assert!(
        missing
            .to_string()
            .contains("Device not found for this request."),
        "{missing}"
    );
}

#[tokio::test]
async fn a_udid_stored_without_the_hyphen_is_found_on_the_second_try() {
    let dir = tempfile::tempdir().unwrap();
    let seed_path = dir.path().join("seed.json");
    std::fs::write(
        &seed_path,
        r#"{"oauth-clients":[{"client-id":"c","client-secret":"s3cret-value"}],
            "organization-groups":[{"id":1,"name":"Ward"}],
            "users":[{"id":7,"username":"staging","staging":"multi"}],
            "devices":[{"id":55,"platform":"apple","udid":"00008110000A1B2C3D4E801E","serial-number":"X","user-id":7,"staged-by":7}]}"#,
    )
    .unwrap();
    let sim = sim_with(SimOptions {
        seed: Some(seed_path),
        ..SimOptions::default()
    })
    .await;
    let client = client(&oauth_config(&sim));
    let found = client
        .lookup_device(&apple("00008110-000a1b2c3d4e801e"))
        .await
        .unwrap();
    assert_eq!(found.mdm_id, 55);
    let lookups: Vec<(String, u16)> = api_calls(&sim)
        .iter()
        .map(|e| (e.path.clone(), e.status))
        .collect();
    assert_eq!(lookups.len(), 2, "{lookups:?}");
    assert!(
        lookups[0].0.contains("00008110-000A1B2C3D4E801E") && lookups[0].1 == 404,
        "{lookups:?}"
    );
    assert!(
        lookups[1].0.contains("id=00008110000A1B2C3D4E801E") && lookups[1].1 == 200,
        "{lookups:?}"
    );
}

#[tokio::test]
async fn only_an_exact_active_username_is_used() {
    let sim = sim().await;
    let client = client(&oauth_config(&sim));

    // "alice" matches alice, alice2 and m.alice on the server; only alice is taken.
    assert_eq!(client.lookup_user(&user("alice")).await.unwrap(), 1001);
    assert_eq!(client.lookup_user(&user("alice2")).await.unwrap(), 1002);

    let bob = client.lookup_user(&user("bob")).await.unwrap_err();
    assert!(
        matches!(bob, MdmError::AmbiguousUser { matches: 2, .. }),
        "{bob:?}"
    );
    assert!(bob.to_string().starts_with("ambiguous"), "{bob}");
    assert_eq!(bob.class(), ErrorClass::Rejected);

    // Workspace ONE compares user names without regard to case: "Alice" is alice.
    assert_eq!(
        client.lookup_user(&user("Alice")).await.unwrap(),
        client.lookup_user(&user("alice")).await.unwrap()
    );
    for name in ["ali", "nobody", "erin"] {
        let err = client.lookup_user(&user(name)).await.unwrap_err();
        assert!(
            matches!(err, MdmError::NoSuchUser { .. }),
            "{name}: {err:?}"
        );
        assert!(err.to_string().starts_with("no such user"), "{err}");
    }

    // End to end: the device ends up with alice, never alice2.
    client
        .perform(&apple(UDID_101), &assign("alice"))
        .await
        .unwrap();
    let device = sim.device(101).unwrap();
    assert_eq!((device.user_id, device.username.as_str()), (1001, "alice"));

    let refused = client
        .perform(&apple(UDID_102), &assign("bob"))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, MdmError::AmbiguousUser { .. }),
        "{refused:?}"
    );
    assert_eq!(sim.device(102).unwrap().username, "staging-4west");
    assert!(!api_calls(&sim)
        .iter()
        .any(|e| e.method == "PATCH" && e.device_id == Some(102)));
}

#[tokio::test]
async fn a_warm_checkout_costs_exactly_one_call() {
    let sim = sim().await;
    let client = client(&oauth_config(&sim));
    let device = apple(UDID_102);

    client.perform(&device, &assign("alice")).await.unwrap();
    let cold: Vec<String> = api_calls(&sim)
        .iter()
        .map(|e| format!("{} {}", e.method, e.path))
        .collect();
    assert_eq!(cold.len(), 3, "device lookup, user search, PATCH: {cold:?}");
    assert_eq!(token_calls(&sim).len(), 1);

    sim.clear_journal();
    client
        .perform(&device, &MdmAction::AssignStagingUser)
        .await
        .unwrap();
    assert_eq!(api_calls(&sim).len(), 2, "staging user search + PATCH");
    assert_eq!(sim.device(102).unwrap().username, "staging-4west");

    sim.clear_journal();
    client.perform(&device, &assign("alice")).await.unwrap();
    let warm = api_calls(&sim);
    assert_eq!(warm.len(), 1, "{warm:?}");
    assert_eq!(warm[0].method, "PATCH");
    assert_eq!(warm[0].path, "/API/mdm/devices/102/enrollmentuser/1001");
    assert_eq!(warm[0].api_version, Some(2));
    assert_eq!(warm[0].status, 200);

    sim.clear_journal();
    client
        .perform(&device, &MdmAction::AssignStagingUser)
        .await
        .unwrap();
    assert_eq!(api_calls(&sim).len(), 1);
    assert!(token_calls(&sim).is_empty());
    assert_eq!(client.health().token_fetches, 1);
}

#[tokio::test]
async fn verify_after_assign_adds_one_get_and_compares_the_user() {
    let sim = sim().await;
    let mut config = oauth_config(&sim);
    config.verify_after_assign = true;
    let client = client(&config);
    let device = apple(UDID_103);
    client.perform(&device, &assign("carol")).await.unwrap();
    client.perform(&device, &assign("dave")).await.unwrap();
    sim.clear_journal();
    client.perform(&device, &assign("carol")).await.unwrap();
    let calls: Vec<String> = api_calls(&sim)
        .iter()
        .map(|e| format!("{} {}", e.method, e.path))
        .collect();
    assert_eq!(
        calls,
        vec![
            "PATCH /API/mdm/devices/103/enrollmentuser/1006",
            "GET /API/mdm/devices/103"
        ]
    );
}

#[tokio::test]
async fn the_enrolment_user_change_is_refused_where_workspace_one_refuses_it() {
    let sim = sim().await;
    let client = client(&oauth_config(&sim));
    let cases = [
        (
            DeviceKey::android(SERIAL_201),
            "supported only for MacOS and iOS",
        ),
        (
            apple(UDID_106_USER_ENROLLED),
            "not enrolled to Multi-Staging",
        ),
        (
            apple(UDID_107_SINGLE_STAGED),
            "not enrolled to Multi-Staging",
        ),
    ];
    for (device, expected) in cases {
        let err = client.perform(&device, &assign("alice")).await.unwrap_err();
        match &err {
            MdmError::Rejected {
                status: 400,
                message,
                ..
            } => assert!(message.contains(expected), "{err}"),
            other => panic!("{device}: {other:?}"),
        }
        assert_eq!(err.class(), ErrorClass::Rejected);
    }
}

#[tokio::test]
async fn commands_and_pending_wipes() {
    let sim = sim().await;
    let client = client(&oauth_config(&sim));
    let device = apple(UDID_101);
    let sync = MdmAction::Command {
        command: DeviceCommand::SyncDevice,
    };
    client.perform(&device, &sync).await.unwrap();
    assert!(!client.wipe_pending(&device).await.unwrap());

    let wiped = apple(UDID_103);
    client
        .perform(
            &wiped,
            &MdmAction::Command {
                command: DeviceCommand::EnterpriseWipe,
            },
        )
        .await
        .unwrap();
    assert!(client.wipe_pending(&wiped).await.unwrap());
    assert!(client.lookup_device(&wiped).await.unwrap().wipe_pending);
    assert_eq!(
        sim.device(103).unwrap().enrollment_status,
        "EnterpriseWipePending"
    );

    let android = DeviceKey::android(SERIAL_201);
    client
        .perform(
            &android,
            &MdmAction::Command {
                command: DeviceCommand::DeviceWipe,
            },
        )
        .await
        .unwrap();
    assert!(client.wipe_pending(&android).await.unwrap());

    assert_eq!(sim.device(101).unwrap().commands, vec!["SyncDevice"]);
    let posts: Vec<(String, u16)> = api_calls(&sim)
        .iter()
        .filter(|e| e.method == "POST")
        .map(|e| (e.path.clone(), e.status))
        .collect();
    assert_eq!(
        posts[0],
        (
            "/API/mdm/devices/101/commands?command=SyncDevice".to_string(),
            202
        )
    );
    assert_eq!(posts.len(), 3);
}

#[tokio::test]
async fn change_of_organization_group() {
    let sim = sim().await;
    let client = client(&oauth_config(&sim));
    let device = apple(UDID_101);
    client
        .perform(
            &device,
            &MdmAction::ChangeOrganizationGroup { group_id: 572 },
        )
        .await
        .unwrap();
    assert_eq!(sim.device(101).unwrap().group_id, 572);
    let put = api_calls(&sim)
        .into_iter()
        .find(|e| e.method == "PUT")
        .unwrap();
    assert_eq!(
        put.path,
        "/API/mdm/devices/101/commands/changeorganizationgroup/572"
    );

    let err = client
        .perform(
            &device,
            &MdmAction::ChangeOrganizationGroup { group_id: 999 },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, MdmError::Rejected { status: 404, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn webhooks_get_the_json_body_and_no_workspace_one_credentials() {
    let sim = sim().await;
    let config = oauth_config(&sim);
    let client = client(&config);
    let body = r#"{"event":"checkout","user":"alice"}"#;
    let url = format!("{}/_sim/webhook/checkout", sim.url());
    client
        .perform(
            &apple(UDID_101),
            &MdmAction::Webhook {
                url,
                body: body.into(),
            },
        )
        .await
        .unwrap();
    let hook = sim
        .journal()
        .into_iter()
        .find(|e| e.path.starts_with("/_sim/webhook"))
        .unwrap();
    assert_eq!(hook.body.as_deref(), Some(body));
    assert_eq!(hook.auth, "none");
    assert!(token_calls(&sim).is_empty(), "a webhook needs no token");

    let failing = format!(
        "{}/_sim/webhook/x?status=500&token=hooksecret123",
        sim.url()
    );
    let err = client
        .perform(
            &apple(UDID_101),
            &MdmAction::Webhook {
                url: failing,
                body: "{}".into(),
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, MdmError::ServerError { status: 500, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("127.0.0.1"), "{err}");
    assert_no_secrets(&texts(&err), &["hooksecret123"]);
}

#[tokio::test]
async fn basic_auth_sends_the_tenant_code_and_names_the_key_to_fix() {
    let sim = sim().await;
    let config = basic_config(&sim);
    let client = client(&config);
    assert_eq!(
        client.lookup_device(&apple(UDID_101)).await.unwrap().mdm_id,
        101
    );
    assert_eq!(api_calls(&sim)[0].auth, "basic");
    assert!(token_calls(&sim).is_empty());

    let UemAuth::Basic { username, password } = &config.auth else {
        panic!("basic config")
    };
    let tenant = config.tenant_code.clone().unwrap();

    let mut wrong_password = config.clone();
    wrong_password.auth = UemAuth::Basic {
        username: username.clone(),
        password: Secret::new("not-the-password"),
    };
    let err = UemClient::new(&wrong_password)
        .unwrap()
        .lookup_device(&apple(UDID_101))
        .await
        .unwrap_err();
    match &err {
        MdmError::Unauthorized {
            status: 401,
            error_code: Some(1005),
            config_key,
            ..
        } => {
            assert!(config_key.contains("uem.auth.password-file"), "{err}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.class(), ErrorClass::Unauthorized);
    assert_no_secrets(
        &texts(&err),
        &["not-the-password", password.expose(), tenant.expose()],
    );
    sim.clear_journal();

    // Basic auth is not retried on 401: one call only.
    let _ = UemClient::new(&wrong_password)
        .unwrap()
        .lookup_user(&user("alice"))
        .await
        .unwrap_err();
    assert_eq!(api_calls(&sim).len(), 1);

    let mut wrong_tenant = config.clone();
    wrong_tenant.tenant_code = Some(Secret::new("WRONGTENANT77"));
    let err = UemClient::new(&wrong_tenant)
        .unwrap()
        .lookup_device(&apple(UDID_101))
        .await
        .unwrap_err();
    match &err {
        MdmError::Unauthorized {
            status: 403,
            error_code: Some(1013),
            config_key,
            ..
        } => {
            assert!(config_key.contains("uem.tenant-code-file"), "{err}")
        }
        other => panic!("{other:?}"),
    }
    // Workspace ONE echoes the tenant code in its message; the client scrubs it.
    assert_no_secrets(&texts(&err), &["WRONGTENANT77", password.expose()]);
    assert!(
        err.to_string()
            .contains("Tenant code *** does not identify"),
        "{err}"
    );
}

#[tokio::test]
async fn oauth_works_with_and_without_the_tenant_code_and_refuses_a_wrong_secret() {
    let sim = sim().await;
    let config = oauth_config(&sim);
    let mut without_tenant = config.clone();
    without_tenant.tenant_code = None;
    for config in [&config, &without_tenant] {
        assert_eq!(
            client(config).lookup_user(&user("carol")).await.unwrap(),
            1006
        );
    }
    assert!(api_calls(&sim)
        .iter()
        .all(|e| e.auth == "bearer" && e.status == 200));

    let UemAuth::OAuth {
        token_url,
        client_id,
        client_secret,
    } = &config.auth
    else {
        panic!("oauth")
    };
    let mut wrong = config.clone();
    wrong.auth = UemAuth::OAuth {
        token_url: token_url.clone(),
        client_id: client_id.clone(),
        client_secret: Secret::new("wrong-secret-xyz"),
    };
    let err = UemClient::new(&wrong)
        .unwrap()
        .lookup_user(&user("carol"))
        .await
        .unwrap_err();
    match &err {
        MdmError::Unauthorized {
            config_key,
            message,
            ..
        } => {
            assert!(config_key.contains("uem.auth.client-secret-file"), "{err}");
            assert!(message.contains("invalid_client"), "{err}");
        }
        other => panic!("{other:?}"),
    }
    assert_no_secrets(&texts(&err), &["wrong-secret-xyz", client_secret.expose()]);
    let debug = format!("{:?}", UemClient::new(&config).unwrap());
    assert_no_secrets(
        &debug,
        &[
            client_secret.expose(),
            config.tenant_code.as_ref().unwrap().expose(),
        ],
    );

    let mut bad_url = config.clone();
    bad_url.auth = UemAuth::OAuth {
        token_url: format!("{}/connect/nothing", sim.url()),
        client_id: client_id.clone(),
        client_secret: client_secret.clone(),
    };
    let err = UemClient::new(&bad_url)
        .unwrap()
        .lookup_user(&user("carol"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, MdmError::Unauthorized { config_key, .. } if config_key.contains("uem.auth.token-url")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_token_that_expires_mid_run_is_renewed_and_the_run_continues() {
    let sim = sim().await;
    let client = client(&oauth_config(&sim));
    client.lookup_device(&apple(UDID_101)).await.unwrap();
    sim.add_fault(Fault::TokenExpiry);
    client
        .perform(&apple(UDID_101), &assign("carol"))
        .await
        .unwrap();
    assert_eq!(sim.device(101).unwrap().username, "carol");
    let statuses: Vec<u16> = api_calls(&sim).iter().map(|e| e.status).collect();
    assert!(statuses.contains(&401), "{statuses:?}");
    assert_eq!(token_calls(&sim).len(), 2);
    assert_eq!(client.health().token_fetches, 2);
}

#[tokio::test]
async fn a_short_lived_token_is_renewed_before_it_expires() {
    let sim = sim_with(SimOptions {
        token_lifetime: Duration::from_secs(2),
        ..SimOptions::default()
    })
    .await;
    let client = client(&oauth_config(&sim));
    client.lookup_user(&user("alice")).await.unwrap();
    // Renewal is due at half the lifetime (1 s) for short tokens; the token is still
    // valid on the server until 2 s, so no call meets a 401.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    client.lookup_device(&apple(UDID_101)).await.unwrap();
    assert_eq!(token_calls(&sim).len(), 2);
    assert!(api_calls(&sim).iter().all(|e| e.status == 200));
}

#[tokio::test]
async fn a_401_is_retried_once_only() {
    let sim = sim().await;
    let client = client(&oauth_config(&sim));
    sim.add_fault(fault("401:5@/API"));
    let err = client.lookup_user(&user("alice")).await.unwrap_err();
    assert!(
        matches!(err, MdmError::Unauthorized { status: 401, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("uem.auth.client-id"), "{err}");
    let api: Vec<u16> = api_calls(&sim).iter().map(|e| e.status).collect();
    assert_eq!(api, vec![401, 401], "one call and one retry");
    assert_eq!(
        token_calls(&sim).len(),
        2,
        "the first token and one renewal"
    );
    sim.clear_faults();
    assert_eq!(client.lookup_user(&user("alice")).await.unwrap(), 1001);
}

#[tokio::test]
async fn server_errors_and_rate_limits_are_transient() {
    let sim = sim().await;
    let client = client(&oauth_config(&sim));
    let device = apple(UDID_101);
    client.lookup_device(&device).await.unwrap();

    sim.add_fault(fault("500:1@/API"));
    let err = client.lookup_device(&device).await.unwrap_err();
    assert!(
        matches!(err, MdmError::ServerError { status: 500, .. }),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Transient { retry_after: None });
    client.lookup_device(&device).await.unwrap();

    sim.add_fault(fault("503:1@/API"));
    let err = client.lookup_device(&device).await.unwrap_err();
    match &err {
        MdmError::ServerError {
            status: 503,
            message,
            ..
        } => assert!(message.contains("HTML page"), "{err}"),
        other => panic!("{other:?}"),
    }

    sim.add_fault(fault("429@/API"));
    let err = client.lookup_device(&device).await.unwrap_err();
    assert_eq!(
        err.class(),
        ErrorClass::Transient { retry_after: None },
        "{err}"
    );

    sim.add_fault(fault("429-retry-after:2@/API"));
    let err = client.lookup_device(&device).await.unwrap_err();
    assert_eq!(
        err.class(),
        ErrorClass::Transient {
            retry_after: Some(Duration::from_secs(2))
        },
        "{err}"
    );
    assert!(err.to_string().contains("retry after 2 s"), "{err}");

    // A fault scoped to the PATCH leaves lookups alone.
    sim.add_fault(fault("500:1@PATCH"));
    client.lookup_device(&device).await.unwrap();
    let err = client.perform(&device, &assign("alice")).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    client.perform(&device, &assign("alice")).await.unwrap();
}

#[tokio::test]
async fn timeouts_latency_and_malformed_bodies_are_transient() {
    let sim = sim_with(SimOptions {
        hang: Duration::from_secs(5),
        ..SimOptions::default()
    })
    .await;
    let mut config = oauth_config(&sim);
    config.request_timeout_ms = 1_000;
    let client = client(&config);
    let device = apple(UDID_101);
    client.lookup_device(&device).await.unwrap();

    sim.add_fault(fault("timeout:1@/API"));
    let err = client.lookup_device(&device).await.unwrap_err();
    assert!(matches!(err, MdmError::Timeout { .. }), "{err:?}");
    assert!(err.is_transient());
    let hung = api_calls(&sim)
        .into_iter()
        .find(|e| e.fault.as_deref() == Some("timeout"))
        .unwrap();
    assert_eq!(hung.status, 0);
    client.lookup_device(&device).await.unwrap();

    sim.add_fault(fault("latency:2500ms"));
    let err = client.lookup_device(&device).await.unwrap_err();
    assert!(matches!(err, MdmError::Timeout { .. }), "{err:?}");
    sim.clear_faults();

    sim.add_fault(fault("malformed:1@/API"));
    let err = client.lookup_device(&device).await.unwrap_err();
    assert!(matches!(err, MdmError::BadResponse { .. }), "{err:?}");
    assert!(err.is_transient());
    sim.add_fault(fault("malformed:1@/API/system"));
    let err = client.lookup_user(&user("alice")).await.unwrap_err();
    assert!(matches!(err, MdmError::BadResponse { .. }), "{err:?}");
    assert_eq!(client.lookup_user(&user("alice")).await.unwrap(), 1001);
}

#[tokio::test]
async fn an_outage_is_transient_and_work_converges_after_it() {
    let sim = sim().await;
    let client = client(&oauth_config(&sim));
    sim.add_fault(fault("outage:300s"));
    // Even the token endpoint is down.
    let err = client
        .perform(&apple(UDID_102), &assign("alice"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, MdmError::ServerError { status: 503, .. }),
        "{err:?}"
    );
    assert!(err.is_transient());
    let err = client.lookup_device(&apple(UDID_102)).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(sim.state().outage_ms_left > 0);
    sim.clear_faults();
    client
        .perform(&apple(UDID_102), &assign("alice"))
        .await
        .unwrap();
    assert_eq!(sim.device(102).unwrap().username, "alice");
}

#[tokio::test]
async fn an_unreachable_server_is_transient_and_names_the_base_url() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = listener.local_addr().unwrap();
    drop(listener);
    let sim = sim().await;
    let mut config = basic_config(&sim);
    config.base_url = format!("http://{closed}");
    let err = client(&config)
        .lookup_device(&apple(UDID_101))
        .await
        .unwrap_err();
    assert!(matches!(err, MdmError::Unreachable { .. }), "{err:?}");
    assert!(err.is_transient());
    assert!(err.to_string().contains("uem.base-url"), "{err}");
    let UemAuth::Basic { password, .. } = &config.auth else {
        panic!("basic")
    };
    assert_no_secrets(&texts(&err), &[password.expose()]);
}

#[tokio::test]
async fn html_and_empty_error_bodies_are_read_without_failing() {
    let sim = sim().await;
    let mut config = oauth_config(&sim);
    config.base_url = format!("{}/wrong-prefix", sim.url());
    let err = client(&config)
        .lookup_device(&apple(UDID_101))
        .await
        .unwrap_err();
    // An HTML page is a proxy's or load balancer's answer, not Workspace ONE's: retried
    // (transient), never a refusal, and the message says what to check if it persists.
    match &err {
        MdmError::ServerError {
            status: 404,
            message,
            error_code: None,
            ..
        } => {
            assert!(message.contains("The resource cannot be found."), "{err}");
            assert!(message.contains("uem.base-url"), "{err}");
        }
        other => panic!("an HTML 404 is transient, not a missing device: {other:?}"),
    }
    assert!(err.is_transient());
    // An empty 401 body (revoked token) twice in a row.
    let client = client(&oauth_config(&sim));
    sim.add_fault(fault("401:2@/API"));
    let err = client.lookup_device(&apple(UDID_101)).await.unwrap_err();
    match &err {
        MdmError::Unauthorized { message, .. } => assert_eq!(message, "(empty body)"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_low_quota_slows_calls_down_and_a_spent_one_is_rate_limited() {
    let sim = sim().await;
    let client = client(&basic_config(&sim));
    client.lookup_device(&apple(UDID_101)).await.unwrap();
    let health = client.health();
    assert_eq!(health.rate_limit_limit, Some(250_000));
    assert_eq!(health.rate_limit_remaining, Some(249_999));
    assert_eq!(health.pacing_delay, Duration::ZERO);
    assert!(health.last_correlation_id.is_some());

    sim.set_rate_limit(1_000, 50, Duration::from_secs(5));
    client.lookup_device(&apple(UDID_101)).await.unwrap();
    let health = client.health();
    assert_eq!(health.rate_limit_remaining, Some(49));
    assert!(health.pacing_delay > Duration::ZERO, "{health:?}");

    sim.set_rate_limit(1_000, 0, Duration::from_secs(60));
    let err = client.lookup_device(&apple(UDID_101)).await.unwrap_err();
    match err.class() {
        ErrorClass::Transient {
            retry_after: Some(wait),
        } => assert!(
            wait <= Duration::from_secs(60) && wait >= Duration::from_secs(1),
            "{wait:?}"
        ),
        other => panic!("{other:?}: {err}"),
    }
}

#[tokio::test]
async fn a_bad_ca_file_or_url_is_a_setup_error_naming_the_key() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("ca.pem");
    std::fs::write(&not_pem, "this is not a certificate").unwrap();
    let mut config = oauth_config(&sim);
    for path in [not_pem, dir.path().join("missing.pem")] {
        config.ca_file = Some(path);
        let err = UemClient::new(&config).unwrap_err();
        assert!(
            matches!(
                err,
                MdmError::Setup {
                    key: "uem.ca-file",
                    ..
                }
            ),
            "{err:?}"
        );
    }
    config.ca_file = None;
    config.base_url = "not a url".into();
    assert!(matches!(
        UemClient::new(&config).unwrap_err(),
        MdmError::Setup {
            key: "uem.base-url",
            ..
        }
    ));
}

#[tokio::test]
async fn actions_run_concurrently_on_clones_sharing_one_token() {
    let sim = sim().await;
    let client = client(&oauth_config(&sim));
    let mut tasks = Vec::new();
    for (udid, name) in [(UDID_101, "alice"), (UDID_102, "carol"), (UDID_103, "dave")] {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            client.perform(&apple(udid), &assign(name)).await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(
        token_calls(&sim).len(),
        1,
        "one token fetch shared by every task"
    );
    assert_eq!(sim.device(103).unwrap().username, "dave");
}

#[tokio::test]
async fn stale_cached_ids_are_looked_up_again_once() {
    // The same tenant re-enrolled the device and re-created the user: new ids. The
    // second simulator takes over the first one's address, as a restored server would.
    let dir = tempfile::tempdir().unwrap();
    let seed = |device_id: i64, user_id: i64| {
        let path = dir.path().join(format!("seed-{device_id}.json"));
        let text = format!(
            r#"{{"basic-accounts":[{{"username":"api","password":"pw-123456"}}],
                "organization-groups":[{{"id":1,"name":"Ward"}}],
                "users":[{{"id":1,"username":"staging","staging":"multi"}},{{"id":{user_id},"username":"alice"}}],
                "devices":[{{"id":{device_id},"platform":"apple","udid":"{UDID_101}","serial-number":"X","user-id":1,"staged-by":1}}]}}"#
        );
        std::fs::write(&path, text).unwrap();
        SimOptions {
            seed: Some(path),
            ..SimOptions::default()
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let first = tokio::spawn(badgedock::uemsim::serve(
        listener,
        seed(55, 7),
        async move {
            let _ = stopped.await;
        },
    ));
    let config = badgedock::config::UemConfig {
        base_url: format!("http://{addr}"),
        tenant_code: None,
        staging_user: user("staging"),
        auth: UemAuth::Basic {
            username: "api".into(),
            password: Secret::new("pw-123456"),
        },
        connect_timeout_ms: 2_000,
        request_timeout_ms: 5_000,
        ca_file: None,
        verify_after_assign: false,
        concurrency: 1,
        preferred_security_type: None,
        organization_groups: Vec::new(),
    };
    let client = client(&config);
    client
        .perform(&apple(UDID_101), &assign("alice"))
        .await
        .unwrap();
    stop.send(()).unwrap();
    first.await.unwrap().unwrap();

    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(badgedock::uemsim::serve(
        listener,
        seed(66, 8),
        async move {
            let _ = stopped.await;
        },
    ));
    client
        .perform(&apple(UDID_101), &assign("alice"))
        .await
        .unwrap();
    let journal: Vec<badgedock::uemsim::JournalEntry> =
        reqwest::get(format!("http://{addr}/_sim/journal"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let calls: Vec<(String, u16)> = journal
        .iter()
        .map(|e| (e.method.clone(), e.status))
        .collect();
    let expected = [("PATCH", 404), ("GET", 200), ("GET", 200), ("PATCH", 200)];
    assert_eq!(
        calls,
        expected.map(|(m, s)| (m.to_string(), s)).to_vec(),
        "{journal:?}"
    );
    assert_eq!(journal[3].path, "/API/mdm/devices/66/enrollmentuser/8");
}
