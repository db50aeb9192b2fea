//! Reading, changing and deleting domains: pages, reading back, origins, DNS instructions.

use serde_json::{Value, json};

use crate::harness::{ApiCall, EDGE_HOSTNAME, Harness, origin_url, unique_apex};
use crate::{DOMAIN_ID_ROUTES, domain_call, limits, timestamp};

#[tokio::test]
async fn domains_are_listed_a_page_at_a_time() {
    let harness = Harness::start().await;
    let account = harness.create_account("pro", false).await;
    let other = harness.create_account("pro", false).await;
    harness
        .create_domain(&other, "other.customer-two.com")
        .await;
    let mut created = Vec::new();
    for n in 0..5 {
        let domain = harness
            .create_domain(&account, &format!("shop{n}.customer-one.com"))
            .await;
        created.push(domain["id"].as_str().unwrap().to_owned());
    }

    // The fixture asks for limit=20: everything on one page.
    let all = harness
        .call(ApiCall::new("domains-list").by_account(&account.id))
        .await
        .expect(200);
    assert_eq!(all["domains"].as_array().unwrap().len(), 5);
    assert_eq!(all["next_cursor"], Value::Null);
    assert_eq!(
        all["domains"][0]["dns_instructions"]["records"][0]["type"],
        "CNAME"
    );

    // Two at a time: 2 + 2 + 1, in creation order, following next_cursor.
    let mut seen = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let limit = [("limit", "2")];
        let with_cursor;
        let query: &[(&str, &str)] = match &cursor {
            None => &limit,
            Some(cursor) => {
                with_cursor = [("limit", "2"), ("cursor", cursor.as_str())];
                &with_cursor
            }
        };
        let page = harness
            .call(
                ApiCall::new("domains-list")
                    .by_account(&account.id)
                    .query(query),
            )
            .await
            .expect(200);
        pages += 1;
        let items = page["domains"].as_array().unwrap();
        assert!(items.len() <= 2, "{page}");
        seen.extend(
            items
                .iter()
                .map(|item| item["id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(seen, created);
    assert_eq!(pages, 3);

    // Without a limit: the default page size, no query string at all.
    let default = harness
        .call(
            ApiCall::new("domains-list")
                .by_account(&account.id)
                .query(&[]),
        )
        .await
        .expect(200);
    assert_eq!(default["domains"].as_array().unwrap().len(), 5);

    // An empty cursor is the first page; a forged one is a client error.
    let first = harness
        .call(
            ApiCall::new("domains-list")
                .by_account(&account.id)
                .query(&[("cursor", ""), ("limit", "1")]),
        )
        .await
        .expect(200);
    assert_eq!(first["domains"][0]["id"], json!(created[0]));
    harness
        .call(
            ApiCall::new("domains-list")
                .by_account(&account.id)
                .query(&[("cursor", "not-a-cursor")]),
        )
        .await
        .expect_error(400, "invalid_cursor");
}

#[tokio::test]
async fn a_page_size_out_of_range_is_refused() {
    let harness = Harness::start().await;
    let account = harness.create_account("pro", false).await;

    for limit in ["0", "-1", "abc", "", "1.5", "99999999999"] {
        let message = harness
            .call(
                ApiCall::new("domains-list")
                    .by_account(&account.id)
                    .query(&[("limit", limit)]),
            )
            .await
            .expect_error(400, "invalid_limit");
        assert!(message.contains("1 to 100"), "{message}");
    }
    // Values above 100 are read as 100 (openapi.yaml), not refused.
    for limit in ["1", "100", "500"] {
        harness
            .call(
                ApiCall::new("domains-list")
                    .by_account(&account.id)
                    .query(&[("limit", limit)]),
            )
            .await
            .expect(200);
    }
}

#[tokio::test]
async fn a_domain_reads_back_and_its_origin_changes() {
    let harness = Harness::start().await;
    let account = harness.create_account("pro", false).await;
    let created = harness
        .create_domain(&account, "shop.customer-one.com")
        .await;
    let id = created["id"].as_str().unwrap();

    let read = harness
        .on_domain("domains-get", &account, id)
        .await
        .expect(200);
    assert_eq!(read, created);

    // The fixture's body: {"origin_url": "https://origin-2.saas.example.com"}.
    harness
        .dns
        .add_a(
            "origin-2.saas.example.com",
            &[std::net::Ipv4Addr::new(1, 0, 0, 9)],
        )
        .await
        .unwrap();
    let updated = harness
        .on_domain("domains-update", &account, id)
        .await
        .expect(200);
    assert_eq!(updated["origin_url"], "https://origin-2.saas.example.com/");
    assert_eq!(updated["hostname"], "shop.customer-one.com");
    assert!(timestamp(&updated["updated_at"]) >= timestamp(&created["updated_at"]));
    let read = harness
        .on_domain("domains-get", &account, id)
        .await
        .expect(200);
    assert_eq!(read["origin_url"], "https://origin-2.saas.example.com/");

    // Refused changes leave the origin as it was.
    for (body, status, code) in [
        (
            json!({ "origin_url": "http://169.254.169.254/" }),
            400,
            "invalid_origin",
        ),
        (
            json!({ "origin_url": "http://localhost/" }),
            400,
            "invalid_origin",
        ),
        (
            json!({ "origin_url": "ftp://origin.saas-platform.com/" }),
            400,
            "invalid_origin",
        ),
        (
            json!({ "origin_url": origin_url(), "hostname": "x.customer-one.com" }),
            400,
            "unknown_field",
        ),
        (json!({}), 400, "invalid_field"),
    ] {
        harness
            .call(
                ApiCall::new("domains-update")
                    .by_account(&account.id)
                    .id(id)
                    .json(body),
            )
            .await
            .expect_error(status, code);
    }
    harness
        .call(
            ApiCall::new("domains-update")
                .by_account(&account.id)
                .id(id)
                .without_body(),
        )
        .await
        .expect_error(400, "missing_body");
    let read = harness
        .on_domain("domains-get", &account, id)
        .await
        .expect(200);
    assert_eq!(read["origin_url"], "https://origin-2.saas.example.com/");
}

#[tokio::test]
async fn a_deleted_domain_is_gone_with_its_certificate_and_its_name_is_free() {
    let harness = Harness::start().await;
    let account = harness.create_account("pro", false).await;
    let apex = unique_apex("delete");
    let hostname = format!("shop.{apex}");
    let created = harness.create_domain(&account, &hostname).await;
    let id = created["id"].as_str().unwrap();
    // Pointing at the edge (challtestsrv's default answer): a nudge requests the certificate.
    let ssl = harness
        .on_domain("domains-nudge", &account, id)
        .await
        .expect(200);
    let certificate_id = ssl["certificate"]["id"].as_str().unwrap().to_owned();

    let reply = harness.on_domain("domains-delete", &account, id).await;
    assert_eq!(reply.status, 204);
    assert_eq!(reply.body, Value::Null, "204 has no body");

    for function in DOMAIN_ID_ROUTES {
        harness
            .call(domain_call(function, &account, id))
            .await
            .expect_error(404, "not_found");
    }
    assert_eq!(limits(&harness, &account).await["domain_count"], 0);
    let account_id = edgecert_core::AccountId::parse(&account.id).unwrap();
    let certificate_id = edgecert_core::CertificateId::parse(&certificate_id).unwrap();
    assert!(
        harness
            .state
            .services
            .store
            .get_certificate(&account_id, &certificate_id)
            .await
            .unwrap()
            .is_none(),
        "the managed certificate is deleted with its domain"
    );

    // The hostname can be whitelisted again, by anyone.
    let other = harness.create_account("pro", false).await;
    harness.create_domain(&other, &hostname).await;
}

#[tokio::test]
async fn dns_instructions_are_served_on_their_own() {
    let harness = Harness::start().await;
    let strict = harness.create_account("pro", true).await;
    let relaxed = harness.create_account("pro", false).await;

    let apex = harness.create_domain(&strict, "customer-one.com").await;
    let dns = harness
        .on_domain("domains-dns", &strict, apex["id"].as_str().unwrap())
        .await
        .expect(200);
    assert_eq!(dns["hostname"], "customer-one.com");
    assert_eq!(dns["dns_instructions"], apex["dns_instructions"]);
    assert_eq!(dns["dns_instructions"]["records"][0]["type"], "A");
    assert_eq!(
        dns["ownership_verification"],
        json!({
            "type": "TXT",
            "name": "_edgecert-verify.customer-one.com",
            "value": apex["ownership_verification"]["value"],
        })
    );

    let sub = harness
        .create_domain(&relaxed, "www.customer-two.com")
        .await;
    let dns = harness
        .on_domain("domains-dns", &relaxed, sub["id"].as_str().unwrap())
        .await
        .expect(200);
    assert_eq!(
        dns,
        json!({
            "hostname": "www.customer-two.com",
            "dns_instructions": { "records": [
                { "type": "CNAME", "name": "www.customer-two.com", "value": EDGE_HOSTNAME }
            ] },
        })
    );
}
