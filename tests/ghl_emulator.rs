//! Behaviour of the GHL emulator over plain HTTP: the strictness and quirks the reference
//! describes, paging, search lag, limits, OAuth rotation and fault knobs.

mod support;

use std::time::Duration;

use chrono::Utc;
use hotspot_ghl_sync::sandbox::faults::{FaultKnobs, InjectedFault};
use hotspot_ghl_sync::sandbox::ghl::{Contact, GhlEmulator, GhlOptions};
use reqwest::{Method, Response};
use serde_json::{Value, json};

const TOKEN: &str = "pit-test-token";

struct Api {
    emu: GhlEmulator,
    http: reqwest::Client,
    loc: String,
}

impl Api {
    async fn start(opts: GhlOptions) -> Self {
        let emu = GhlEmulator::start(opts).await.unwrap();
        let loc = emu.location_id();
        Self {
            emu,
            http: support::http_client(),
            loc,
        }
    }

    fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.emu.base_url()))
            .bearer_auth(TOKEN)
            .header("Version", "2021-07-28")
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self.req(method, path);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let st = resp.status().as_u16();
        (st, resp.json().await.unwrap_or(Value::Null))
    }

    async fn create(&self, extra: Value) -> String {
        let mut body = json!({"locationId": self.loc});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let (st, v) = self.call(Method::POST, "/contacts/", Some(body)).await;
        assert_eq!(st, 201, "{v}");
        v["contact"]["id"].as_str().unwrap().to_string()
    }

    async fn search(&self, body: Value) -> (u16, Value) {
        let mut b = json!({"locationId": self.loc});
        b.as_object_mut()
            .unwrap()
            .extend(body.as_object().unwrap().clone());
        self.call(Method::POST, "/contacts/search", Some(b)).await
    }
}

async fn json_of(r: Response) -> (u16, Value) {
    let st = r.status().as_u16();
    (st, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn version_and_bearer_are_required() {
    let api = Api::start(GhlOptions::default()).await;
    let url = format!("{}/contacts/abc", api.emu.base_url());
    let (st, body) = json_of(
        api.http
            .get(&url)
            .header("Version", "2021-07-28")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 401);
    assert_eq!(body["message"], "Invalid token: access token is invalid");
    let (st, _) = json_of(
        api.http
            .get(&url)
            .bearer_auth("pit-wrong")
            .header("Version", "2021-07-28")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 401);
    let (st, body) = json_of(api.http.get(&url).bearer_auth(TOKEN).send().await.unwrap()).await;
    assert_eq!(st, 400);
    assert_eq!(body["statusCode"], 400);
    let (st, _) = json_of(
        api.http
            .get(&url)
            .bearer_auth(TOKEN)
            .header("Version", "2023-02-21")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 422);
}

#[tokio::test]
async fn missing_scope_is_401_with_the_scope_message() {
    let opts = GhlOptions {
        tokens: vec![("pit-readonly".into(), vec!["contacts.readonly".into()])],
        ..Default::default()
    };
    let api = Api::start(opts).await;
    let resp = api
        .http
        .post(format!("{}/contacts/", api.emu.base_url()))
        .bearer_auth("pit-readonly")
        .header("Version", "2021-07-28")
        .json(&json!({"locationId": api.loc}))
        .send()
        .await
        .unwrap();
    let (st, body) = json_of(resp).await;
    assert_eq!(st, 401);
    assert_eq!(
        body["message"],
        "The token is not authorized for this scope."
    );
}

#[tokio::test]
async fn unknown_properties_wrong_types_and_missing_fields_are_422() {
    let api = Api::start(GhlOptions::default()).await;
    let id = api.create(json!({"email": "a@example.com"})).await;
    let (st, body) = api
        .call(
            Method::PUT,
            &format!("/contacts/{id}"),
            Some(json!({"locationId": api.loc, "favouriteColour": "red", "dnd": "yes"})),
        )
        .await;
    assert_eq!(st, 422);
    let msgs = body["message"].as_array().unwrap();
    assert!(msgs.contains(&json!("property locationId should not exist")));
    assert!(msgs.contains(&json!("property favouriteColour should not exist")));
    assert!(msgs.contains(&json!("dnd must be a boolean value")));
    assert_eq!(body["error"], "Unprocessable Entity");

    let (st, body) = api
        .call(
            Method::POST,
            &format!("/contacts/{id}/notes"),
            Some(json!({"body": "x", "locationId": api.loc})),
        )
        .await;
    assert_eq!(st, 422);
    assert_eq!(
        body["message"],
        json!(["property locationId should not exist"])
    );
    let (st, _) = api
        .call(
            Method::POST,
            &format!("/contacts/{id}/tags"),
            Some(json!({"tags": ["a"], "locationId": api.loc})),
        )
        .await;
    assert_eq!(st, 422);
    let (st, body) = api
        .call(
            Method::POST,
            &format!("/contacts/{id}/tasks"),
            Some(json!({"title": "t"})),
        )
        .await;
    assert_eq!(st, 422);
    assert!(body["message"].to_string().contains("dueDate"));
    assert!(body["message"].to_string().contains("completed"));
    let (st, _) = api
        .call(
            Method::POST,
            "/contacts/",
            Some(json!({"email": "x@example.com"})),
        )
        .await;
    assert_eq!(st, 422, "locationId is required on create");
    // UpdateContactDto has no companyName or gender: a whitelisting server rejects them.
    let (st, body) = api
        .call(
            Method::PUT,
            &format!("/contacts/{id}"),
            Some(json!({"companyName": "Acme", "gender": "female"})),
        )
        .await;
    assert_eq!(st, 422);
    assert_eq!(body["message"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn deleted_contact_is_400_not_404() {
    let api = Api::start(GhlOptions::default()).await;
    let id = api.create(json!({"email": "gone@example.com"})).await;
    let (st, body) = api
        .call(Method::DELETE, &format!("/contacts/{id}/"), None)
        .await;
    assert_eq!((st, &body), (200, &json!({"succeded": true})));
    for method in [Method::GET, Method::DELETE] {
        let (st, body) = api.call(method, &format!("/contacts/{id}"), None).await;
        assert_eq!(st, 400);
        assert_eq!(
            body,
            json!({"message": format!("Contact not found for id:{id}"), "error": "Bad Request", "statusCode": 400})
        );
    }
    let (st, _) = api
        .call(Method::GET, &format!("/contacts/{id}/notes"), None)
        .await;
    assert_eq!(st, 400);
}

#[tokio::test]
async fn duplicate_create_is_400_with_the_existing_contact() {
    let api = Api::start(GhlOptions::default()).await;
    let first = api
        .create(json!({"email": "Dup@Example.com", "firstName": "Dee", "phone": "(555) 123-4567"}))
        .await;
    let (st, body) = api
        .call(
            Method::POST,
            "/contacts/",
            Some(json!({"locationId": api.loc, "email": "dup@example.COM"})),
        )
        .await;
    assert_eq!(st, 400);
    assert_eq!(body["meta"]["contactId"], first);
    assert_eq!(body["meta"]["matchingField"], "email");
    let (st, body) = api
        .call(
            Method::POST,
            "/contacts/",
            Some(json!({"locationId": api.loc, "phone": "+1 555 123 4567"})),
        )
        .await;
    assert_eq!(st, 400);
    assert_eq!(body["meta"]["matchingField"], "phone");

    // Upsert updates the match instead.
    let (st, body) = api
        .call(
            Method::POST,
            "/contacts/upsert",
            Some(json!({"locationId": api.loc, "email": "dup@example.com", "city": "Oslo"})),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(body["new"], false);
    assert_eq!(body["contact"]["id"], first);
    assert!(body["traceId"].is_string());

    let allow = Api::start(GhlOptions {
        allow_duplicates: true,
        ..Default::default()
    })
    .await;
    allow.create(json!({"email": "same@example.com"})).await;
    allow.create(json!({"email": "same@example.com"})).await;
}

#[tokio::test]
async fn tags_replace_on_put_and_add_remove_via_tag_endpoints() {
    let api = Api::start(GhlOptions::default()).await;
    let id = api
        .create(json!({"email": "t@example.com", "tags": ["a", "b"]}))
        .await;
    let before = api.emu.with_state(|s| s.contacts[&id].date_updated);
    let (st, body) = api
        .call(
            Method::PUT,
            &format!("/contacts/{id}"),
            Some(json!({"tags": ["c"]})),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(body["succeded"], true);
    assert_eq!(body["contact"]["tags"], json!(["c"]));
    let after_put = api.emu.with_state(|s| s.contacts[&id].date_updated);
    assert!(after_put > before, "dateUpdated advances on PUT");

    let (st, _) = api
        .call(
            Method::POST,
            &format!("/contacts/{id}/tags"),
            Some(json!({"tags": ["d"]})),
        )
        .await;
    assert_eq!(st, 201);
    let (st, _) = api
        .call(
            Method::DELETE,
            &format!("/contacts/{id}/tags"),
            Some(json!({"tags": ["c"]})),
        )
        .await;
    assert_eq!(st, 200);
    let (_, body) = api
        .call(Method::GET, &format!("/contacts/{id}"), None)
        .await;
    assert_eq!(body["contact"]["tags"], json!(["d"]));
    assert!(api.emu.with_state(|s| s.contacts[&id].date_updated) > after_put);
}

#[tokio::test]
async fn custom_fields_take_key_or_id_and_answer_id_value() {
    let api = Api::start(GhlOptions::default()).await;
    let field_id = api.emu.with_state(|s| {
        s.custom_field("contact.hotspot_customer_id")
            .unwrap()
            .id
            .clone()
    });
    let id = api
        .create(json!({"customFields": [{"key": "contact.hotspot_customer_id", "field_value": "HS-9"}]}))
        .await;
    let (_, body) = api
        .call(Method::GET, &format!("/contacts/{id}"), None)
        .await;
    assert_eq!(
        body["contact"]["customFields"],
        json!([{"id": field_id, "value": "HS-9"}])
    );
    let (st, body) = api
        .search(json!({"pageLimit": 5, "filters": [{"field": format!("customFields.{field_id}"), "operator": "eq", "value": "HS-9"}]}))
        .await;
    assert_eq!(st, 200);
    assert_eq!(body["total"], 1);
    let (st, _) = api
        .call(
            Method::PUT,
            &format!("/contacts/{id}"),
            Some(json!({"customFields": [{"id": "nope", "field_value": "x"}]})),
        )
        .await;
    assert_eq!(st, 422);
}

fn seed_contacts(emu: &GhlEmulator, n: usize) {
    let base = Utc::now() - chrono::Duration::days(30);
    emu.with_state(|s| {
        for i in 0..n {
            let id = s.new_id();
            let mut c = Contact::new(id, base + chrono::Duration::seconds((i / 3) as i64));
            c.email = Some(format!("guest{i}@example.com"));
            c.tags = vec![if i % 2 == 0 { "even" } else { "odd" }.into()];
            s.insert_contact(c);
        }
    });
}

#[tokio::test]
async fn search_pages_to_10000_then_search_after_sees_each_contact_once() {
    let api = Api::start(GhlOptions {
        rate_limit: 1000,
        ..Default::default()
    })
    .await;
    seed_contacts(&api.emu, 12_000);
    let mut seen = std::collections::HashSet::new();
    let mut last_cursor = Value::Null;
    for page in 1..=20 {
        let (st, body) = api.search(json!({"pageLimit": 500, "page": page})).await;
        assert_eq!(st, 200, "{body}");
        assert_eq!(body["total"], 12_000);
        let list = body["contacts"].as_array().unwrap();
        assert_eq!(list.len(), 500);
        for c in list {
            assert!(
                seen.insert(c["id"].as_str().unwrap().to_string()),
                "dup on page {page}"
            );
        }
        last_cursor = list.last().unwrap()["searchAfter"].clone();
    }
    let (st, body) = api.search(json!({"pageLimit": 500, "page": 21})).await;
    assert_eq!(st, 422, "page paging stops at 10,000 records: {body}");
    let (st, _) = api
        .search(json!({"pageLimit": 500, "page": 1, "searchAfter": last_cursor}))
        .await;
    assert_eq!(st, 422, "page and searchAfter together");
    loop {
        let (st, body) = api
            .search(json!({"pageLimit": 500, "searchAfter": last_cursor}))
            .await;
        assert_eq!(st, 200, "{body}");
        let list = body["contacts"].as_array().unwrap();
        if list.is_empty() {
            break;
        }
        for c in list {
            assert!(seen.insert(c["id"].as_str().unwrap().to_string()));
        }
        last_cursor = list.last().unwrap()["searchAfter"].clone();
    }
    assert_eq!(seen.len(), 12_000);
    let (st, _) = api.search(json!({"pageLimit": 501})).await;
    assert_eq!(st, 422);
}

#[tokio::test]
async fn search_filters_sort_and_reject_unknowns() {
    let api = Api::start(GhlOptions::default()).await;
    seed_contacts(&api.emu, 30);
    let a = api
        .create(json!({"email": "Zed@Example.com", "phone": "555-987-6543", "tags": ["vip"]}))
        .await;
    let cutoff = Utc::now() - chrono::Duration::seconds(5);
    let (_, body) = api
        .search(json!({"pageLimit": 50, "filters": [{"field": "email", "operator": "eq", "value": "zed@example.com"}]}))
        .await;
    assert_eq!(body["contacts"][0]["id"], a);
    let (_, body) = api
        .search(json!({"pageLimit": 50, "filters": [{"field": "phone", "operator": "eq", "value": "+15559876543"}]}))
        .await;
    assert_eq!(body["total"], 1);
    let (_, body) = api
        .search(json!({"pageLimit": 50, "filters": [{"field": "dateUpdated", "operator": "range", "value": {"gte": cutoff.to_rfc3339()}}]}))
        .await;
    assert_eq!(body["total"], 1);
    let (_, body) = api
        .search(json!({"pageLimit": 50, "filters": [{"field": "dateAdded", "operator": "range", "value": {"lt": cutoff.timestamp_millis()}}]}))
        .await;
    assert_eq!(body["total"], 30);
    let (_, body) = api
        .search(
            json!({"pageLimit": 50, "filters": [{"group": "OR", "filters": [
            {"field": "tags", "operator": "eq", "value": "vip"},
            {"field": "id", "operator": "eq", "value": a}]},
            {"field": "tags", "operator": "not_exists"}]}),
        )
        .await;
    assert_eq!(body["total"], 0, "AND of OR-group and not_exists");
    let (_, body) = api
        .search(json!({"pageLimit": 50, "filters": [{"field": "tags", "operator": "eq", "value": "odd"}],
            "sort": [{"field": "email", "direction": "desc"}]}))
        .await;
    assert_eq!(body["total"], 15);
    let emails: Vec<&str> = body["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["email"].as_str().unwrap())
        .collect();
    let mut sorted = emails.clone();
    sorted.sort_by(|x, y| y.cmp(x));
    assert_eq!(emails, sorted);
    for bad in [
        json!({"pageLimit": 5, "filters": [{"field": "shoeSize", "operator": "eq", "value": "9"}]}),
        json!({"pageLimit": 5, "filters": [{"field": "email", "operator": "contains", "value": "zed"}]}),
        json!({"pageLimit": 5, "sort": [{"field": "phone", "direction": "asc"}]}),
        json!({"pageLimit": 5, "sort": [{"field": "email", "direction": "asc"}, {"field": "dnd", "direction": "asc"}, {"field": "source", "direction": "asc"}]}),
        json!({"pageLimit": 5, "unknown": 1}),
    ] {
        let (st, body) = api.search(bad.clone()).await;
        assert_eq!(st, 422, "{bad} → {body}");
    }
    let (st, _) = api
        .call(
            Method::POST,
            "/contacts/search",
            Some(json!({"locationId": api.loc})),
        )
        .await;
    assert_eq!(st, 422, "pageLimit is required");
}

#[tokio::test]
async fn search_lags_writes_but_get_by_id_does_not() {
    let api = Api::start(GhlOptions::default()).await;
    api.emu.set_search_lag(Duration::from_millis(300));
    let id = api.create(json!({"email": "lag@example.com"})).await;
    let filter = json!({"pageLimit": 5, "filters": [{"field": "email", "operator": "eq", "value": "lag@example.com"}]});
    let (_, body) = api.search(filter.clone()).await;
    assert_eq!(body["total"], 0, "not yet indexed");
    let (st, _) = api
        .call(Method::GET, &format!("/contacts/{id}"), None)
        .await;
    assert_eq!(st, 200);
    tokio::time::sleep(Duration::from_millis(350)).await;
    let (_, body) = api.search(filter).await;
    assert_eq!(body["total"], 1);
    // An update shows the old version until the lag passes.
    api.call(
        Method::PUT,
        &format!("/contacts/{id}"),
        Some(json!({"city": "Rome"})),
    )
    .await;
    let (_, body) = api.search(json!({"pageLimit": 5})).await;
    assert_eq!(body["total"], 1);
    assert_eq!(body["contacts"][0]["id"], id);
    assert!(
        body["contacts"][0]["city"].is_null(),
        "old version until the lag passes"
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    let (_, body) = api.search(json!({"pageLimit": 5})).await;
    assert_eq!(body["contacts"][0]["city"], "Rome");
}

/// The knob for what the reference leaves open: whether GHL's duplicate matching sees a contact
/// created a moment ago. Off (default), the upsert matches it at once; on, it matches only once
/// search shows it, and until then creates a second contact on a location allowing duplicates.
#[tokio::test]
async fn dedup_lags_makes_duplicate_matching_wait_for_search() {
    for (dedup_lags, want_new) in [(false, false), (true, true)] {
        let api = Api::start(GhlOptions {
            allow_duplicates: true,
            search_lag: Duration::from_millis(300),
            dedup_lags,
            ..GhlOptions::default()
        })
        .await;
        let first = api.create(json!({"email": "fresh@example.com"})).await;
        let upsert = json!({"locationId": api.loc, "email": "fresh@example.com", "city": "Oslo"});
        let (st, body) = api
            .call(Method::POST, "/contacts/upsert", Some(upsert.clone()))
            .await;
        assert_eq!(st, 200, "{body}");
        assert_eq!(body["new"], want_new, "dedup_lags {dedup_lags}: {body}");
        if !want_new {
            assert_eq!(body["contact"]["id"], first.as_str());
        }
        // Once search has caught up, the upsert matches.
        tokio::time::sleep(Duration::from_millis(350)).await;
        let (_, body) = api
            .call(Method::POST, "/contacts/upsert", Some(upsert))
            .await;
        assert_eq!(body["new"], false, "dedup_lags {dedup_lags}: {body}");
    }
}

#[tokio::test]
async fn rate_limit_headers_on_every_answer_and_429_when_exceeded() {
    let api = Api::start(GhlOptions::default()).await;
    api.emu.set_rate_limit(3, Duration::from_secs(30));
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let r = api
            .req(Method::GET, "/contacts/missing")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let h = r.headers();
        for name in [
            "x-ratelimit-max",
            "x-ratelimit-interval-milliseconds",
            "x-ratelimit-limit-daily",
            "x-ratelimit-daily-remaining",
            "x-ratelimit-daily-reset",
        ] {
            assert!(h.contains_key(name), "{name} missing");
        }
        assert_eq!(h["x-ratelimit-max"], "3");
        assert_eq!(h["x-ratelimit-interval-milliseconds"], "30000");
        remaining.push(h["x-ratelimit-remaining"].to_str().unwrap().to_string());
    }
    assert_eq!(remaining, ["2", "1", "0"]);
    let r = api
        .req(Method::GET, "/contacts/missing")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry));
    assert!(r.headers().contains_key("x-ratelimit-remaining"));
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"statusCode": 429, "message": "Too Many Requests"})
    );

    api.emu.set_rate_limit(100, Duration::from_secs(10));
    api.emu.set_daily_remaining(0);
    let r = api
        .req(Method::GET, "/contacts/missing")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["x-ratelimit-daily-remaining"], "0");
    assert!(
        !r.headers().contains_key("retry-after"),
        "daily exhaustion has no Retry-After"
    );
    // Every request is logged, refused ones included.
    let log = api.emu.requests();
    assert_eq!(log.len(), 5);
    assert_eq!(log.iter().filter(|r| r.status == 429).count(), 2);
    api.emu.clear_requests();
    assert!(api.emu.requests().is_empty());
}

#[tokio::test]
async fn oauth_refresh_tokens_rotate_and_access_tokens_expire() {
    let api = Api::start(GhlOptions::default()).await;
    let token_url = format!("{}/oauth/token", api.emu.base_url());
    let grant = |extra: Vec<(&'static str, String)>| {
        let mut form = vec![
            ("client_id", "emu-client-id".to_string()),
            ("client_secret", "emu-client-secret".to_string()),
        ];
        form.extend(extra);
        form
    };
    let code = api
        .emu
        .issue_auth_code(&["contacts.readonly", "contacts.write"]);
    let form = grant(vec![
        ("grant_type", "authorization_code".into()),
        ("code", code.clone()),
    ]);
    let (st, first) = json_of(api.http.post(&token_url).form(&form).send().await.unwrap()).await;
    assert_eq!(st, 200, "{first}");
    assert_eq!(first["token_type"], "Bearer");
    assert_eq!(first["scope"], "contacts.readonly contacts.write");
    let (st, body) = json_of(api.http.post(&token_url).form(&form).send().await.unwrap()).await;
    assert_eq!(st, 400, "codes are single use");
    assert_eq!(body["error"], "invalid_grant");

    let access = first["access_token"].as_str().unwrap();
    let get = |tok: String| {
        api.http
            .get(format!("{}/contacts/nope", api.emu.base_url()))
            .bearer_auth(tok)
            .header("Version", "2021-07-28")
            .send()
    };
    assert_eq!(
        get(access.into()).await.unwrap().status(),
        400,
        "token works"
    );

    let old_refresh = first["refresh_token"].as_str().unwrap().to_string();
    let refresh_form = grant(vec![
        ("grant_type", "refresh_token".into()),
        ("refresh_token", old_refresh.clone()),
        ("user_type", "Location".into()),
    ]);
    let (st, second) = json_of(
        api.http
            .post(&token_url)
            .form(&refresh_form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 200);
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    assert_eq!(api.emu.token_refreshes(), 1);
    let (st, body) = json_of(
        api.http
            .post(&token_url)
            .form(&refresh_form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 400, "the old refresh token died at once");
    assert_eq!(body["error"], "invalid_grant");

    api.emu.expire_access_tokens();
    let new_access = second["access_token"].as_str().unwrap().to_string();
    assert_eq!(get(new_access).await.unwrap().status(), 401);
    assert_eq!(
        get(TOKEN.into()).await.unwrap().status(),
        400,
        "PITs never expire"
    );

    let (st, _) = json_of(
        api.http
            .post(&token_url)
            .json(
                &json!({"client_id": "emu-client-id", "client_secret": "emu-client-secret",
                "grant_type": "refresh_token", "refresh_token": second["refresh_token"]}),
            )
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 422, "JSON bodies are refused");
    let bad_client = vec![
        ("client_id", "emu-client-id".to_string()),
        ("client_secret", "wrong".to_string()),
        ("grant_type", "refresh_token".to_string()),
        (
            "refresh_token",
            second["refresh_token"].as_str().unwrap().to_string(),
        ),
    ];
    let (st, _) = json_of(
        api.http
            .post(&token_url)
            .form(&bad_client)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 401);
}

#[tokio::test]
async fn injected_500s_follow_the_knob() {
    let api = Api::start(GhlOptions {
        rate_limit: 10_000,
        ..Default::default()
    })
    .await;
    api.emu.set_faults(FaultKnobs {
        p500: 0.3,
        ..Default::default()
    });
    let mut n500 = 0;
    for _ in 0..200 {
        let r = api
            .req(Method::GET, "/contacts/missing")
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            500 => n500 += 1,
            400 => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert!((35..=85).contains(&n500), "{n500} of 200 at p=0.3");
    let injected = api
        .emu
        .requests()
        .iter()
        .filter(|r| r.fault == Some(InjectedFault::Status(500)))
        .count();
    assert_eq!(injected, n500);
}

#[tokio::test]
async fn dropped_connection_after_write_keeps_the_write() {
    let api = Api::start(GhlOptions::default()).await;
    api.emu.set_faults(FaultKnobs {
        p_drop_after_write: 1.0,
        ..Default::default()
    });
    let outcome = api
        .req(Method::POST, "/contacts/")
        .json(&json!({"locationId": api.loc, "email": "ghost@example.com"}))
        .send()
        .await;
    let client_saw_an_answer = match outcome {
        Err(_) => false,
        Ok(resp) => resp.json::<Value>().await.is_ok(),
    };
    assert!(
        !client_saw_an_answer,
        "the client must not get a usable answer"
    );
    let stored = api.emu.with_state(|s| {
        s.contacts
            .values()
            .filter(|c| c.email.as_deref() == Some("ghost@example.com"))
            .count()
    });
    assert_eq!(stored, 1, "the write was applied");
    let log = api.emu.requests();
    assert_eq!(log[0].status, 201);
    assert_eq!(log[0].fault, Some(InjectedFault::DroppedAfterWrite));
    // Reads are never dropped, and a retry now meets the duplicate rule.
    let (st, _) = api.call(Method::GET, "/contacts/missing", None).await;
    assert_eq!(st, 400);
    api.emu.set_faults(FaultKnobs::default());
    let (st, body) = api
        .call(
            Method::POST,
            "/contacts/",
            Some(json!({"locationId": api.loc, "email": "ghost@example.com"})),
        )
        .await;
    assert_eq!(st, 400);
    assert!(body["meta"]["contactId"].is_string());
}

#[tokio::test]
async fn tasks_notes_businesses_round_trip() {
    let api = Api::start(GhlOptions::default()).await;
    let cid = api.create(json!({"email": "r@example.com"})).await;
    let (st, body) = api
        .call(
            Method::POST,
            &format!("/contacts/{cid}/tasks/"),
            Some(json!({"title": "Onboard", "dueDate": "2030-01-01T10:00:00.000Z", "completed": false})),
        )
        .await;
    assert_eq!(st, 201);
    assert_eq!(body["task"]["dueDate"], "2030-01-01T10:00:00.000Z");
    let (st, _) = api
        .call(
            Method::POST,
            &format!("/contacts/{cid}/tasks"),
            Some(json!({"title": "x", "dueDate": "tomorrow", "completed": false})),
        )
        .await;
    assert_eq!(st, 422);
    let (st, body) = api
        .call(Method::GET, &format!("/contacts/{cid}/tasks/bogus"), None)
        .await;
    assert_eq!(st, 400, "{body}");

    let (st, body) = api
        .call(
            Method::POST,
            "/businesses/",
            Some(json!({"name": "Pool Bar", "locationId": api.loc})),
        )
        .await;
    assert_eq!(st, 201);
    let bid = body["buiseness"]["id"].as_str().unwrap().to_string();
    let (st, body) = api
        .call(
            Method::POST,
            "/contacts/bulk/business",
            Some(json!({"locationId": api.loc, "ids": [cid], "businessId": bid})),
        )
        .await;
    assert_eq!((st, &body["ids"]), (200, &json!([cid])));
    let (_, body) = api
        .call(Method::GET, &format!("/contacts/{cid}"), None)
        .await;
    assert_eq!(body["contact"]["businessId"], bid);
    let (st, _) = api
        .call(
            Method::POST,
            "/contacts/bulk/business",
            Some(json!({"locationId": api.loc, "ids": [cid], "businessId": null})),
        )
        .await;
    assert_eq!(st, 200);
    assert!(
        api.emu
            .with_state(|s| s.contacts[&cid].business_id.is_none())
    );
    let (st, _) = api
        .call(
            Method::GET,
            &format!("/businesses/?locationId={}&bogus=1", api.loc),
            None,
        )
        .await;
    assert_eq!(st, 422);
    let (st, _) = api
        .call(
            Method::GET,
            "/businesses/?locationId=SomeOtherLocation001",
            None,
        )
        .await;
    assert_eq!(st, 403);
}

#[tokio::test]
async fn gateway_and_throttle_faults_do_not_touch_state() {
    let api = Api::start(GhlOptions::default()).await;
    api.emu.set_faults(FaultKnobs {
        p502: 1.0,
        ..Default::default()
    });
    let r = api
        .req(Method::POST, "/contacts/")
        .json(&json!({"locationId": api.loc, "email": "x@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(r.headers().contains_key("x-ratelimit-remaining"));
    assert!(
        api.emu.with_state(|s| s.contacts.is_empty()),
        "handler did not run"
    );
    api.emu.set_faults(FaultKnobs {
        p429_retry_after: 1.0,
        retry_after_secs: 4,
        ..Default::default()
    });
    let r = api.req(Method::GET, "/contacts/x").send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "4");
    api.emu.set_faults(FaultKnobs {
        p429_no_retry_after: 1.0,
        ..Default::default()
    });
    let r = api.req(Method::GET, "/contacts/x").send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(!r.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn date_range_filters_take_the_configured_date_form() {
    use hotspot_ghl_sync::sandbox::ghl::DateRangeFormat;
    let api = Api::start(GhlOptions::default()).await;
    api.create(json!({"email": "a@example.com"})).await;
    let iso = json!([{"field": "dateUpdated", "operator": "range",
                      "value": {"gte": "2020-01-01T00:00:00.000Z"}}]);
    let millis = json!([{"field": "dateUpdated", "operator": "range",
                         "value": {"gte": 1_577_836_800_000i64}}]);
    let future = json!([{"field": "dateUpdated", "operator": "range",
                         "value": {"gte": "2999-01-01T00:00:00.000Z"}}]);
    for (format, iso_ok, millis_ok) in [
        (DateRangeFormat::Both, true, true),
        (DateRangeFormat::Iso, true, false),
        (DateRangeFormat::Millis, false, true),
        (DateRangeFormat::Neither, false, false),
        (DateRangeFormat::Ignored, true, true),
    ] {
        api.emu.set_date_range_format(format);
        for (filters, ok) in [(&iso, iso_ok), (&millis, millis_ok)] {
            let (st, v) = api
                .search(json!({"pageLimit": 10, "filters": filters}))
                .await;
            if ok {
                assert_eq!((st, v["total"].as_u64()), (200, Some(1)), "{format:?} {v}");
            } else {
                assert_eq!(st, 422, "{format:?} {filters}");
                assert!(v["message"].to_string().contains("filters.0.value"), "{v}");
            }
        }
        // `dateOfBirth` is a day in either form, whatever the timestamps take.
        let dob =
            json!([{"field": "dateOfBirth", "operator": "range", "value": {"gte": "1990-01-01"}}]);
        let (st, _) = api.search(json!({"pageLimit": 10, "filters": dob})).await;
        assert_eq!(st, 200, "{format:?}");
    }
    // Applied, a bound in the future matches nothing; ignored, it matches everything.
    api.emu.set_date_range_format(DateRangeFormat::Both);
    let (_, v) = api
        .search(json!({"pageLimit": 10, "filters": future}))
        .await;
    assert_eq!(v["total"], 0);
    api.emu.set_date_range_format(DateRangeFormat::Ignored);
    let (_, v) = api
        .search(json!({"pageLimit": 10, "filters": future}))
        .await;
    assert_eq!(v["total"], 1);
}

#[tokio::test]
async fn crm_edits_advance_date_updated_unless_the_knob_keeps_it() {
    for keep in [false, true] {
        let api = Api::start(GhlOptions {
            edits_keep_date_updated: keep,
            ..GhlOptions::default()
        })
        .await;
        let id = api.create(json!({"email": "a@example.com"})).await;
        let before = api.emu.with_state(|s| s.contacts[&id].date_updated);
        tokio::time::sleep(Duration::from_millis(5)).await;
        let edited = api
            .emu
            .with_state(|s| s.crm_edit(&id, |c| c.city = Some("Typed By Sales".into())));
        assert_eq!(edited, Some(()));
        let (after, city) = api
            .emu
            .with_state(|s| (s.contacts[&id].date_updated, s.contacts[&id].city.clone()));
        assert_eq!(city.as_deref(), Some("Typed By Sales"));
        assert_eq!(after == before, keep, "keep = {keep}");
        // An API write advances it either way.
        let (st, _) = api
            .call(
                Method::PUT,
                &format!("/contacts/{id}"),
                Some(json!({"city": "Api"})),
            )
            .await;
        assert_eq!(st, 200);
        assert!(api.emu.with_state(|s| s.contacts[&id].date_updated) > after);
        assert_eq!(api.emu.with_state(|s| s.crm_edit("missing", |_| ())), None);
    }
}

#[tokio::test]
async fn search_pages_see_every_change_between_them() {
    let api = Api::start(GhlOptions::default()).await;
    for i in 0..30 {
        api.create(json!({"email": format!("p{i}@example.com")}))
            .await;
    }
    let sort = json!([{"field": "email", "direction": "asc"}]);
    let page = |n: u64| json!({"pageLimit": 10, "page": n, "sort": sort});
    let emails = |v: &Value| -> Vec<String> {
        v["contacts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["email"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let (_, first) = api.search(page(1)).await;
    assert_eq!(emails(&first)[0], "p0@example.com");
    // The same search again, after an API write: the write shows.
    let (_, _) = api
        .call(
            Method::POST,
            "/contacts/",
            Some(json!({"locationId": api.loc, "email": "a0@example.com"})),
        )
        .await;
    let (_, again) = api.search(page(1)).await;
    assert_eq!(emails(&again)[0], "a0@example.com");
    assert_eq!(again["total"], 31);
    // … and after a CRM edit made directly in the state.
    let id = again["contacts"][1]["id"].as_str().unwrap().to_string();
    api.emu
        .with_state(|s| s.crm_edit(&id, |c| c.email = Some("zz@example.com".into())));
    let (_, last) = api.search(page(4)).await;
    assert_eq!(emails(&last), vec!["zz@example.com"]);
    // A removed contact is gone from the next page read.
    api.emu.with_state(|s| s.delete_contact(&id));
    let (_, last) = api.search(page(4)).await;
    assert_eq!(last["total"], 30);
    assert!(emails(&last).is_empty());
}
