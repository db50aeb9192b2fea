//! Creating domains: DNS instructions, hostname and origin rules, malformed bodies, the plan.

use edgecert_api::request::MAX_BODY_BYTES;
use edgecert_api::{Access, ROUTES};
use edgecert_core::origin::OriginPolicy;
use serde_json::{Value, json};

use crate::harness::{
    ApiCall, EDGE_HOSTNAME, Harness, OPERATOR_DOMAIN, ORIGIN_HOST, origin_url, unique_apex,
};
use crate::{limits, timestamp};

#[tokio::test]
async fn a_subdomain_gets_a_cname_to_the_edge() {
    let harness = Harness::start().await;
    let account = harness.create_account("pro", false).await;

    let body = harness
        .call(
            ApiCall::new("domains-create")
                .by_account(&account.id)
                .json(json!({ "hostname": "Shop.Customer-One.com.", "origin_url": origin_url() })),
        )
        .await
        .expect(201);

    assert!(body["id"].as_str().unwrap().starts_with("dom_"), "{body}");
    assert_eq!(
        body["hostname"], "shop.customer-one.com",
        "lower case, no trailing dot"
    );
    assert_eq!(body["origin_url"], origin_url());
    assert_eq!(body["provisioning_step"], "waiting_dns");
    assert_eq!(body["ownership_verified"], true);
    assert_eq!(body["error"], Value::Null);
    assert_eq!(body["next_attempt_at"], Value::Null);
    assert_eq!(body["certificate_id"], Value::Null);
    assert_eq!(
        body["dns_instructions"],
        json!({ "records": [
            { "type": "CNAME", "name": "shop.customer-one.com", "value": EDGE_HOSTNAME }
        ] })
    );
    assert!(body.get("ownership_verification").is_none(), "{body}");
    assert_eq!(
        timestamp(&body["created_at"]),
        timestamp(&body["updated_at"])
    );

    assert_eq!(limits(&harness, &account).await["domain_count"], 1);
}

#[tokio::test]
async fn the_fixture_body_whitelists_its_hostname() {
    let harness = Harness::start().await;
    let account = harness.create_account("pro", false).await;
    harness
        .dns
        .add_a(
            "origin.saas.example.com",
            &[std::net::Ipv4Addr::new(1, 0, 0, 8)],
        )
        .await
        .unwrap();

    // The event exactly as stored, but for the account id.
    let body = harness
        .call(ApiCall::new("domains-create").by_account(&account.id))
        .await
        .expect(201);
    assert_eq!(body["hostname"], "shop.customer.example.com");
    assert_eq!(body["origin_url"], "https://origin.saas.example.com/");
}

#[tokio::test]
async fn an_apex_domain_gets_a_records_and_a_note() {
    let harness = Harness::start().await;
    let account = harness.create_account("pro", false).await;

    let body = harness.create_domain(&account, "customer-one.co.uk").await;

    let instructions = &body["dns_instructions"];
    assert_eq!(
        instructions["records"],
        json!([{ "type": "A", "name": "customer-one.co.uk", "value": "127.0.0.1" }])
    );
    let note = instructions["note"]
        .as_str()
        .expect("a note for apex names");
    assert!(note.contains("cannot hold a CNAME"), "{note}");
    assert!(
        note.contains("ALIAS/ANAME") && note.contains(EDGE_HOSTNAME),
        "{note}"
    );
}

#[tokio::test]
async fn an_account_that_requires_ownership_gets_a_txt_record_to_create() {
    let harness = Harness::start().await;
    let strict = harness.create_account("pro", true).await;
    let relaxed = harness.create_account("pro", false).await;

    let body = harness
        .create_domain(&strict, "shop.customer-one.com")
        .await;
    assert_eq!(body["provisioning_step"], "waiting_ownership");
    assert_eq!(body["ownership_verified"], false);
    let record = &body["ownership_verification"];
    assert_eq!(record["type"], "TXT");
    assert_eq!(record["name"], "_edgecert-verify.shop.customer-one.com");
    let token = record["value"].as_str().expect("a token");
    assert!(
        token.starts_with("edgecert-verify-") && token.len() > 30,
        "{token}"
    );

    let other = harness
        .create_domain(&relaxed, "shop.customer-two.com")
        .await;
    assert!(other.get("ownership_verification").is_none(), "{other}");
    assert_ne!(
        harness.create_domain(&strict, "www.customer-one.com").await["ownership_verification"]["value"],
        json!(token),
        "every domain has its own token"
    );
}

#[tokio::test]
async fn internationalised_hostnames_are_stored_as_punycode() {
    let harness = Harness::start().await;
    let account = harness.create_account("pro", false).await;

    let body = harness
        .create_domain(&account, "Shop.München.example.com")
        .await;
    assert_eq!(body["hostname"], "shop.xn--mnchen-3ya.example.com");
    assert_eq!(
        body["dns_instructions"]["records"][0]["name"],
        "shop.xn--mnchen-3ya.example.com"
    );

    // The same name written in punycode is the same domain.
    harness
        .call(ApiCall::new("domains-create").by_account(&account.id).json(
            json!({ "hostname": "shop.xn--mnchen-3ya.example.com", "origin_url": origin_url() }),
        ))
        .await
        .expect_error(409, "domain_exists");
}

#[tokio::test]
async fn hostnames_that_break_the_rules_are_refused() {
    let harness = Harness::start().await;
    let account = harness.create_account("pro", false).await;

    let long_label = format!("{}.customer.com", "a".repeat(64));
    let long_name = format!("{}customer.com", "abcdefghi.".repeat(25));
    assert!(long_name.len() > 253);
    for hostname in [
        "",
        "   ",
        "localhost",
        "app.localhost",
        "127.0.0.1",
        "[::1]",
        "::1",
        "127.1",
        "0x7f000001",
        "com",
        "co.uk",
        "github.io",
        "intranet",
        "*.customer.com",
        "shop.*.customer.com",
        "-shop.customer.com",
        "shop-.customer.com",
        "shop..customer.com",
        "shop_1.customer.com",
        "shop customer.com",
        "https://shop.customer.com",
        long_label.as_str(),
        long_name.as_str(),
    ] {
        let reply = harness
            .call(
                ApiCall::new("domains-create")
                    .by_account(&account.id)
                    .json(json!({ "hostname": hostname, "origin_url": origin_url() })),
            )
            .await;
        assert_eq!(
            reply.status, 400,
            "{hostname:?} was accepted: {}",
            reply.body
        );
        reply.expect_error(400, "invalid_hostname");
    }
    assert_eq!(limits(&harness, &account).await["domain_count"], 0);
}

#[tokio::test]
async fn no_account_can_claim_the_operators_domain() {
    // The edge's own hostname points at the edge by definition: whitelisting it would pass the
    // DNS check at once and route the operator's traffic to an account's origin. Every other
    // name of the operator's registered domain (issue 12, defect 8) is the operator's too.
    let harness = Harness::start().await;
    let account = harness.create_account("pro", false).await;

    for hostname in [
        EDGE_HOSTNAME.to_owned(),
        EDGE_HOSTNAME.to_uppercase(),
        format!("{EDGE_HOSTNAME}."),
        format!("shop.{EDGE_HOSTNAME}"),
        OPERATOR_DOMAIN.to_owned(),
        format!("www.{OPERATOR_DOMAIN}"),
        format!("status.eu.{OPERATOR_DOMAIN}"),
    ] {
        let message = harness
            .call(
                ApiCall::new("domains-create")
                    .by_account(&account.id)
                    .json(json!({ "hostname": hostname, "origin_url": origin_url() })),
            )
            .await
            .expect_error(400, "invalid_hostname");
        assert!(
            message.contains("operator's own domain"),
            "{hostname}: {message}"
        );
    }
    // Names that merely end the same way are someone else's.
    harness
        .create_domain(&account, &format!("shop.my{OPERATOR_DOMAIN}"))
        .await;
    assert_eq!(limits(&harness, &account).await["domain_count"], 1);
}

#[tokio::test]
async fn special_use_and_doubly_dotted_names_are_refused() {
    // Issue 12, defect 8: names that can never get a public certificate, and `name..`.
    let harness = Harness::start().await;
    let account = harness.create_account("pro", false).await;

    for (hostname, reason) in [
        ("shop.customer-one.com..", "empty label"),
        ("printer.local", "special-use"),
        ("db.internal", "special-use"),
        ("shop.test", "special-use"),
        ("nothing.invalid", "special-use"),
        ("abcdefghijklmnop.onion", "special-use"),
        ("router.home.arpa", "special-use"),
        ("1.0.0.10.in-addr.arpa", "special-use"),
        ("app.localhost", "special-use"),
        ("site.alt", "special-use"),
        ("shop.example", "special-use"),
    ] {
        let message = harness
            .call(
                ApiCall::new("domains-create")
                    .by_account(&account.id)
                    .json(json!({ "hostname": hostname, "origin_url": origin_url() })),
            )
            .await
            .expect_error(400, "invalid_hostname");
        assert!(message.contains(reason), "{hostname}: {message}");
    }
    assert_eq!(limits(&harness, &account).await["domain_count"], 0);
}

#[tokio::test]
async fn origins_the_edge_must_not_reach_are_refused() {
    let harness = Harness::start().await;
    let account = harness.create_account("pro", false).await;

    for origin in [
        "http://127.0.0.1",
        "http://127.0.0.1:8080/app",
        "http://127.1",
        "http://2130706433/",
        "http://[::1]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://[::ffff:169.254.169.254]/",
        "http://[fe80::1]/",
        "http://10.0.0.5/",
        "http://192.168.1.1/",
        "http://172.16.0.1/",
        "http://100.64.0.1/",
        "http://0.0.0.0/",
        "http://localhost/",
        "http://LOCALHOST:3000/",
        "http://api.localhost/",
        // Issue 12, defect 3: IPv6 forms that embed an IPv4 address, special-purpose blocks.
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[2002:a9fe:a9fe::1]/",
        "http://[::169.254.169.254]/",
        "http://[::10.0.0.1]/",
        "http://[64:ff9b::a00:1]/",
        "http://198.18.0.1/",
        "http://192.0.0.1/",
        "http://203.0.113.7/",
        // Issue 12, defect 8: ports 0 and below 1024 but 80/443, query strings, fragments.
        "http://origin.saas-platform.com:0/",
        "http://origin.saas-platform.com:22/",
        "http://origin.saas-platform.com:25/",
        "https://origin.saas-platform.com/app?token=secret",
        "https://origin.saas-platform.com/app#top",
        "ftp://files.saas-platform.com/",
        "file:///etc/passwd",
        "gopher://origin.saas-platform.com/",
        "https://user:secret@origin.saas-platform.com/",
        "origin.saas-platform.com",
        "not a url",
        "",
        // A name that resolves to loopback (challtestsrv's default answer).
        "https://resolves-to-loopback.saas-platform.com/",
    ] {
        let reply = harness
            .call(
                ApiCall::new("domains-create")
                    .by_account(&account.id)
                    .json(json!({ "hostname": "shop.customer-one.com", "origin_url": origin })),
            )
            .await;
        assert_eq!(reply.status, 400, "{origin:?} was accepted: {}", reply.body);
        reply.expect_error(400, "invalid_origin");
    }

    // An origin URL of 60 KB (under the 64 KiB body limit) is refused for its length.
    let long_origin = format!("https://{ORIGIN_HOST}/{}", "a".repeat(60 * 1024));
    let message = harness
        .call(
            ApiCall::new("domains-create")
                .by_account(&account.id)
                .json(json!({ "hostname": "e.customer-one.com", "origin_url": long_origin })),
        )
        .await
        .expect_error(400, "invalid_origin");
    assert!(message.contains("2048 bytes"), "{message}");

    // Globally reachable addresses are fine, by name or by literal (never connected to here),
    // and so are the ports 80, 443 and 1024 up.
    for origin in [
        origin_url(),
        "http://1.0.0.1:8080/base".to_owned(),
        "https://[2606:4700:4700::1001]/".to_owned(),
        format!("http://{ORIGIN_HOST}:80/"),
        format!("http://{ORIGIN_HOST}:443/"),
        format!("https://{ORIGIN_HOST}:1024/app/"),
    ] {
        let hostname = format!(
            "{}.customer-one.com",
            unique_apex("origin").replace('.', "-")
        );
        harness
            .call(
                ApiCall::new("domains-create")
                    .by_account(&account.id)
                    .json(json!({ "hostname": hostname, "origin_url": origin })),
            )
            .await
            .expect(201);
    }
}

#[tokio::test]
async fn the_operator_may_allow_loopback_origins() {
    let harness = Harness::with_origin_policy(OriginPolicy {
        allow_loopback: true,
        allow_private: false,
    })
    .await;
    let account = harness.create_account("pro", false).await;

    for (hostname, origin) in [
        ("a.customer-one.com", "http://127.0.0.1:8080/"),
        ("b.customer-one.com", "http://localhost:3000/"),
        (
            "c.customer-one.com",
            "https://resolves-to-loopback.saas-platform.com/",
        ),
    ] {
        let body = harness
            .call(
                ApiCall::new("domains-create")
                    .by_account(&account.id)
                    .json(json!({ "hostname": hostname, "origin_url": origin })),
            )
            .await
            .expect(201);
        assert_eq!(body["origin_url"], origin);
    }
    // Metadata and private addresses stay refused.
    for origin in [
        "http://169.254.169.254/",
        "http://[fd00:ec2::254]/",
        "http://10.0.0.5/",
    ] {
        harness
            .call(
                ApiCall::new("domains-create")
                    .by_account(&account.id)
                    .json(json!({ "hostname": "d.customer-one.com", "origin_url": origin })),
            )
            .await
            .expect_error(400, "invalid_origin");
    }
}

#[tokio::test]
async fn malformed_bodies_get_their_own_codes() {
    let harness = Harness::start().await;
    let account = harness.create_account("pro", false).await;
    let create = || ApiCall::new("domains-create").by_account(&account.id);

    harness
        .call(create().without_body())
        .await
        .expect_error(400, "missing_body");
    harness
        .call(create().body("  \n"))
        .await
        .expect_error(400, "missing_body");
    for text in [
        r#"{"hostname": "a.customer-one.com","#,
        "not json",
        "{'hostname': 1}",
    ] {
        let message = harness
            .call(create().body(text))
            .await
            .expect_error(400, "invalid_json");
        assert_eq!(message, "The body is not valid JSON");
    }
    let message = harness
        .call(create().json(json!({
            "hostname": "a.customer-one.com", "origin_url": origin_url(), "account_id": "acct_x"
        })))
        .await
        .expect_error(400, "unknown_field");
    assert!(message.contains("account_id"), "{message}");
    for body in [
        json!({ "hostname": 42, "origin_url": origin_url() }),
        json!({ "hostname": "a.customer-one.com" }),
        json!({ "hostname": null, "origin_url": origin_url() }),
        json!(42),
        json!("a.customer-one.com"),
    ] {
        harness
            .call(create().json(body))
            .await
            .expect_error(400, "invalid_field");
    }
    assert_eq!(limits(&harness, &account).await["domain_count"], 0);
}

/// Whether `message` names a Rust type or serde's internals rather than fields and JSON words.
fn leaks_internals(message: &str) -> bool {
    let camel_case = message
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .any(|word| {
            word.chars()
                .zip(word.chars().skip(1))
                .any(|(a, b)| a.is_ascii_lowercase() && b.is_ascii_uppercase())
        });
    let words = [
        "struct", "enum", "variant", "u8", "u16", "u32", "u64", "i32", "i64", "usize", "Option",
        "Vec", "String", "line ", "column", "serde",
    ];
    camel_case || words.iter().any(|word| message.contains(word))
}

#[tokio::test]
async fn malformed_bodies_never_name_internal_types_on_any_route() {
    // Issue 12, defect 8: "expected struct NewDomain at line 1 column 4" named a Rust type.
    let harness = Harness::start().await;
    let account = harness.create_account("elite", false).await;
    // Every route that reads a JSON body, with its fields.
    let routes: [(&str, &[&str]); 7] = [
        (
            "accounts-create",
            &["name", "plan", "require_ownership_verification"],
        ),
        (
            "accounts-update",
            &["name", "plan", "require_ownership_verification"],
        ),
        ("domains-create", &["hostname", "origin_url"]),
        ("domains-update", &["origin_url"]),
        ("zones-create", &["name", "provider", "provider_zone_id"]),
        (
            "certificates-create",
            &[
                "zone_id",
                "domain",
                "sans",
                "wildcard",
                "auto_renew",
                "key_type",
            ],
        ),
        ("certificates-update", &["auto_renew"]),
    ];
    let mut bodies_sent = 0;
    for (function, fields) in routes {
        let route = ROUTES
            .iter()
            .find(|route| route.function == function)
            .unwrap_or_else(|| panic!("{function} is not a route"));
        let call = || match route.access {
            Access::Admin => ApiCall::new(function).by_admin(),
            Access::Account => ApiCall::new(function).by_account(&account.id),
        };
        let mut malformed: Vec<(String, bool)> = [
            "42",
            "\"text\"",
            "[]",
            "null",
            "true",
            "{\"unknown\": 1}",
            "{\"a\": {\"b\": [1, 2]}}",
            "{",
            "{\"a\": 1,}",
            "{} trailing",
        ]
        .iter()
        .map(|body| (body.to_string(), true))
        .collect();
        // An empty object and each field with values of every JSON type: some are of the
        // right type (then the request may go on), the others must be refused without naming
        // a type.
        malformed.push(("{}".to_owned(), false));
        for field in fields {
            for value in [
                json!(42),
                json!(-1),
                json!(true),
                json!([1]),
                json!({"x": 1}),
                json!(null),
                json!("x"),
            ] {
                malformed.push((json!({ *field: value }).to_string(), false));
            }
            malformed.push((format!("{{\"{field}\": \"a\", \"{field}\": \"b\"}}"), false));
        }
        for (body, must_refuse) in malformed {
            let reply = harness.call(call().body(&body)).await;
            bodies_sent += 1;
            if must_refuse {
                assert_eq!(reply.status, 400, "{function} {body}: {}", reply.body);
                let code = reply.body["error"]["code"].as_str().unwrap_or_default();
                assert!(
                    ["invalid_json", "invalid_field", "unknown_field"].contains(&code),
                    "{function} {body}: {}",
                    reply.body
                );
            }
            if reply.status >= 400 {
                let message = reply.body["error"]["message"].as_str().unwrap_or_default();
                assert!(!leaks_internals(message), "{function} {body}: {message}");
            }
        }
    }
    assert!(bodies_sent > 100);
    assert!(leaks_internals(
        "expected struct NewDomain at line 1 column 4"
    ));
}

#[tokio::test]
async fn base64_encoded_bodies_are_read_like_text_ones() {
    let harness = Harness::start().await;
    let account = harness.create_account("pro", false).await;

    // A client that sends JSON as application/octet-stream gets its body base64-encoded.
    let body = json!({ "hostname": "a.customer-one.com", "origin_url": origin_url() });
    let created = harness
        .call(
            ApiCall::new("domains-create")
                .by_account(&account.id)
                .base64_body(body.to_string().as_bytes(), "application/octet-stream"),
        )
        .await
        .expect(201);
    assert_eq!(created["hostname"], "a.customer-one.com");

    // The same rules apply to the decoded bytes.
    harness
        .call(
            ApiCall::new("domains-create")
                .by_account(&account.id)
                .base64_body(&[0xff, 0xfe, b'{'], "application/octet-stream"),
        )
        .await
        .expect_error(400, "invalid_json");
    let over = vec![b' '; MAX_BODY_BYTES + 1];
    harness
        .call(
            ApiCall::new("domains-create")
                .by_account(&account.id)
                .base64_body(&over, "application/octet-stream"),
        )
        .await
        .expect_error(413, "payload_too_large");
}

#[tokio::test]
async fn bodies_over_64_kib_are_refused_with_413() {
    let harness = Harness::start().await;
    let account = harness.create_account("pro", false).await;

    // A valid body padded with whitespace to exactly the limit is read...
    let valid = json!({ "hostname": "a.customer-one.com", "origin_url": origin_url() }).to_string();
    let at_limit = format!("{valid}{}", " ".repeat(MAX_BODY_BYTES - valid.len()));
    assert_eq!(at_limit.len(), MAX_BODY_BYTES);
    harness
        .call(
            ApiCall::new("domains-create")
                .by_account(&account.id)
                .body(&at_limit),
        )
        .await
        .expect(201);

    // ...one byte more is not, even though it is still valid JSON.
    let over = format!("{at_limit} ");
    let message = harness
        .call(
            ApiCall::new("domains-create")
                .by_account(&account.id)
                .body(&over),
        )
        .await
        .expect_error(413, "payload_too_large");
    assert!(message.contains("65536"), "{message}");

    let domain = harness.create_domain(&account, "b.customer-one.com").await;
    let huge_origin = format!("https://{ORIGIN_HOST}/{}", "a".repeat(70 * 1024));
    for call in [
        ApiCall::new("domains-update")
            .by_account(&account.id)
            .id(domain["id"].as_str().unwrap())
            .json(json!({ "origin_url": huge_origin })),
        ApiCall::new("accounts-create")
            .by_admin()
            .json(json!({ "name": "x".repeat(70 * 1024), "plan": "pro" })),
        ApiCall::new("accounts-update")
            .by_admin()
            .id(&account.id)
            .json(json!({ "name": "x".repeat(70 * 1024) })),
    ] {
        harness
            .call(call)
            .await
            .expect_error(413, "payload_too_large");
    }
    assert_eq!(limits(&harness, &account).await["domain_count"], 2);
}

#[tokio::test]
async fn a_hostname_belongs_to_one_domain_across_all_accounts() {
    let harness = Harness::start().await;
    let first = harness.create_account("pro", false).await;
    let second = harness.create_account("elite", false).await;
    harness.create_domain(&first, "shop.customer-one.com").await;

    for (account, hostname) in [
        (&first, "shop.customer-one.com"),
        (&first, "SHOP.customer-one.com."),
        (&second, "shop.customer-one.com"),
        (&second, "Shop.Customer-One.Com"),
    ] {
        let reply = harness
            .call(
                ApiCall::new("domains-create")
                    .by_account(&account.id)
                    .json(json!({ "hostname": hostname, "origin_url": origin_url() })),
            )
            .await;
        let message = reply.expect_error(409, "domain_exists");
        assert_eq!(message, "Domain already exists");
    }
    // Neither account's count moved, and the second account cannot see the first's domain.
    assert_eq!(limits(&harness, &first).await["domain_count"], 1);
    assert_eq!(limits(&harness, &second).await["domain_count"], 0);
    let listed = harness
        .call(ApiCall::new("domains-list").by_account(&second.id))
        .await
        .expect(200);
    assert_eq!(listed, json!({ "domains": [], "next_cursor": null }));
}

#[tokio::test]
async fn the_plan_caps_the_number_of_domains() {
    let harness = Harness::start().await;
    let plus = harness.create_account("plus", false).await;

    let mut ids = Vec::new();
    for n in 0..5 {
        let domain = harness
            .create_domain(&plus, &format!("shop{n}.customer-one.com"))
            .await;
        ids.push(domain["id"].as_str().unwrap().to_owned());
    }
    let message = harness
        .call(
            ApiCall::new("domains-create")
                .by_account(&plus.id)
                .json(json!({ "hostname": "shop5.customer-one.com", "origin_url": origin_url() })),
        )
        .await
        .expect_error(403, "domain_limit_reached");
    assert_eq!(message, "Domain limit reached for plan");
    let usage = limits(&harness, &plus).await;
    assert_eq!(
        (usage["max_domains"].clone(), usage["domain_count"].clone()),
        (json!(5), json!(5))
    );

    // A refused name is not taken: another account can have it.
    let other = harness.create_account("pro", false).await;
    harness
        .create_domain(&other, "shop5.customer-one.com")
        .await;

    // Deleting one frees a slot.
    harness
        .on_domain("domains-delete", &plus, &ids[0])
        .await
        .expect(204);
    harness.create_domain(&plus, "shop6.customer-one.com").await;

    // A free account has no domains at all, until the operator upgrades it.
    let free = harness.create_account("free", false).await;
    harness
        .call(
            ApiCall::new("domains-create")
                .by_account(&free.id)
                .json(json!({ "hostname": "a.customer-two.com", "origin_url": origin_url() })),
        )
        .await
        .expect_error(403, "domain_limit_reached");
    harness
        .call(
            ApiCall::new("accounts-update")
                .by_admin()
                .id(&free.id)
                .json(json!({ "plan": "plus" })),
        )
        .await
        .expect(200);
    harness.create_domain(&free, "a.customer-two.com").await;
}
