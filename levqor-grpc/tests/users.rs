//! `levqor.v1.UsersService` through the generated client: users, keys and the caller.

mod support;

use levqor_grpc::pb;
use support::*;
use tonic::Code;

fn create(email: &str, name: Option<&str>) -> pb::CreateUserRequest {
    pb::CreateUserRequest {
        email: email.into(),
        name: name.map(str::to_string),
    }
}

/// `ListKeys` of `user_id`, asked with `key`.
fn keys_of(key: &str, user_id: &str) -> tonic::Request<pb::ListKeysRequest> {
    as_(
        key,
        pb::ListKeysRequest {
            user_id: user_id.into(),
        },
    )
}

#[tokio::test]
async fn users_are_upserted_by_normalized_email_found_read_and_updated() {
    let server = Server::start().await;
    let mut users = server.users();
    let first = users
        .create_user(as_(ADMIN, create(" Ada@Example.com ", Some("Ada"))))
        .await
        .unwrap()
        .into_inner();
    assert!(first.created);
    let ada = first.user.unwrap();
    assert_eq!(
        (ada.email.as_str(), ada.name.as_deref()),
        ("ada@example.com", Some("Ada"))
    );
    assert!(uuid::Uuid::parse_str(&ada.id).is_ok(), "{ada:?}");
    assert!(ada.created_at.is_some() && ada.updated_at.is_some());

    // Asking again returns the same user, unchanged.
    let again = users
        .create_user(as_(ADMIN, create("ada@example.com", None)))
        .await
        .unwrap()
        .into_inner();
    assert!(!again.created);
    assert_eq!(again.user.unwrap(), ada);

    let found = users
        .find_user(as_(
            ADMIN,
            pb::FindUserRequest {
                email: "ADA@example.com".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found, ada);
    let got = users
        .get_user(as_(ADMIN, pb::GetUserRequest { id: ada.id.clone() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, ada);

    // The user reads and changes themselves.
    let key = users
        .create_key(as_(
            ADMIN,
            pb::CreateKeyRequest {
                user_id: ada.id.clone(),
                scopes: vec![],
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .secret;
    let me = users
        .get_me(as_(&key, pb::GetMeRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me, ada);
    let found = users
        .find_user(as_(
            &key,
            pb::FindUserRequest {
                email: "ada@example.com".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.id, ada.id);
    let updated = users
        .update_user(as_(
            &key,
            pb::UpdateUserRequest {
                id: ada.id.clone(),
                email: Some(" Ada.L@Example.com".into()),
                name: Some("Ada L".into()),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            updated.id.as_str(),
            updated.email.as_str(),
            updated.name.as_deref()
        ),
        (ada.id.as_str(), "ada.l@example.com", Some("Ada L"))
    );
    assert_eq!(updated.created_at, ada.created_at);
    assert!(updated.updated_at.unwrap().seconds >= ada.updated_at.unwrap().seconds);

    // Fields left unset are unchanged; an empty name clears the name.
    let unchanged = users
        .update_user(as_(
            &key,
            pb::UpdateUserRequest {
                id: ada.id.clone(),
                email: None,
                name: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (unchanged.email.as_str(), unchanged.name.as_deref()),
        ("ada.l@example.com", Some("Ada L"))
    );
    let cleared = users
        .update_user(as_(
            &key,
            pb::UpdateUserRequest {
                id: ada.id.clone(),
                email: None,
                name: Some(String::new()),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (cleared.email.as_str(), cleared.name.as_deref()),
        ("ada.l@example.com", None)
    );
    let me = users
        .get_me(as_(&key, pb::GetMeRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me, cleared);
}

#[tokio::test]
async fn keys_are_shown_once_listed_without_secrets_and_revocable() {
    let server = Server::start().await;
    let (id, key) = server.user("keys@example.com").await;
    let mut users = server.users();
    let issued = users
        .create_key(as_(
            &key,
            pb::CreateKeyRequest {
                user_id: id.clone(),
                scopes: vec!["jobs:read".into()],
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let read_only = issued.key.unwrap();
    assert_eq!(read_only.user_id, id);
    assert_eq!(read_only.scopes, ["jobs:read"]);
    assert!(read_only.revoked_at.is_none());
    assert!(
        issued.secret.starts_with("lq_") && issued.secret.starts_with(&read_only.prefix),
        "{} / {}",
        issued.secret,
        read_only.prefix
    );

    let listed = users
        .list_keys(keys_of(&key, &id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.keys.len(), 2);
    assert!(listed.keys.contains(&read_only));
    let full = listed.keys.iter().find(|k| k.id != read_only.id).unwrap();
    assert_eq!(full.scopes, ["*"], "no scopes asked for means every scope");
    let text = json(&listed).to_string();
    for secret in [&key, &issued.secret] {
        assert!(!text.contains(&secret[3..]), "a listed key has no secret");
    }

    // A read-only key may read but not issue or revoke keys.
    let me = users
        .get_me(as_(&issued.secret, pb::GetMeRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.id, id);
    let issue = users
        .create_key(as_(
            &issued.secret,
            pb::CreateKeyRequest {
                user_id: id.clone(),
                scopes: vec![],
            },
        ))
        .await;
    assert_eq!(
        refusal(issue),
        (Code::PermissionDenied, "insufficient_scope".into())
    );

    // Revoking works at once.
    let revoked = users
        .revoke_key(as_(
            &key,
            pb::RevokeKeyRequest {
                id: read_only.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(revoked.id, read_only.id);
    assert!(revoked.revoked_at.is_some());
    let after = users.get_me(as_(&issued.secret, pb::GetMeRequest {})).await;
    assert_eq!(
        refusal(after),
        (Code::Unauthenticated, "unauthenticated".into())
    );
    let listed = users
        .list_keys(keys_of(ADMIN, &id))
        .await
        .unwrap()
        .into_inner();
    let gone = listed.keys.iter().find(|k| k.id == read_only.id).unwrap();
    assert!(gone.revoked_at.is_some(), "listed with its revocation");
}

#[tokio::test]
async fn another_users_ids_read_as_not_found() {
    let server = Server::start().await;
    let (ada, _) = server.user("ada@example.com").await;
    let (_, bob) = server.user("bob@example.com").await;
    let mut users = server.users();
    let ada_key = users
        .list_keys(keys_of(ADMIN, &ada))
        .await
        .unwrap()
        .into_inner()
        .keys
        .remove(0);

    let not_found = (Code::NotFound, "not_found".to_string());
    let r = users
        .get_user(as_(&bob, pb::GetUserRequest { id: ada.clone() }))
        .await;
    assert_eq!(refusal(r), not_found);
    let r = users
        .find_user(as_(
            &bob,
            pb::FindUserRequest {
                email: "ada@example.com".into(),
            },
        ))
        .await;
    assert_eq!(refusal(r), not_found);
    let r = users
        .update_user(as_(
            &bob,
            pb::UpdateUserRequest {
                id: ada.clone(),
                email: None,
                name: Some("Mallory".into()),
            },
        ))
        .await;
    assert_eq!(refusal(r), not_found);
    let r = users
        .create_key(as_(
            &bob,
            pb::CreateKeyRequest {
                user_id: ada.clone(),
                scopes: vec![],
            },
        ))
        .await;
    assert_eq!(refusal(r), not_found);
    let r = users.list_keys(keys_of(&bob, &ada)).await;
    assert_eq!(refusal(r), not_found);
    let r = users
        .revoke_key(as_(
            &bob,
            pb::RevokeKeyRequest {
                id: ada_key.id.clone(),
            },
        ))
        .await;
    assert_eq!(refusal(r), not_found);

    // Nothing changed; ids that are not ids name nothing.
    let got = users
        .get_user(as_(ADMIN, pb::GetUserRequest { id: ada.clone() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.name.as_deref(), Some("Ada"));
    let keys = users
        .list_keys(keys_of(ADMIN, &ada))
        .await
        .unwrap()
        .into_inner();
    assert!(keys.keys.iter().all(|k| k.revoked_at.is_none()));
    for id in ["not-an-id", "0190a000-0000-7000-8000-000000000000"] {
        let r = users
            .get_user(as_(ADMIN, pb::GetUserRequest { id: id.into() }))
            .await;
        assert_eq!(refusal(r), not_found, "{id}");
        let r = users
            .revoke_key(as_(ADMIN, pb::RevokeKeyRequest { id: id.into() }))
            .await;
        assert_eq!(refusal(r), not_found, "{id}");
    }
    let r = users
        .find_user(as_(
            ADMIN,
            pb::FindUserRequest {
                email: "nobody@example.com".into(),
            },
        ))
        .await;
    assert_eq!(refusal(r), not_found);
}

#[tokio::test]
async fn keys_are_required_and_creating_users_is_for_the_admin() {
    let server = Server::start().await;
    let (id, key) = server.user("ada@example.com").await;
    let mut users = server.users();
    let r = users.get_me(pb::GetMeRequest {}).await;
    assert_eq!(
        refusal(r),
        (Code::Unauthenticated, "unauthenticated".into())
    );
    let r = users.create_user(create("eve@example.com", None)).await;
    assert_eq!(refusal(r).0, Code::Unauthenticated);
    let r = users.get_user(pb::GetUserRequest { id: id.clone() }).await;
    assert_eq!(refusal(r).0, Code::Unauthenticated);
    let r = users.list_keys(keys_of("lq_not_a_key", &id)).await;
    assert_eq!(refusal(r).0, Code::Unauthenticated);

    let r = users
        .create_user(as_(&key, create("eve@example.com", None)))
        .await;
    assert_eq!(refusal(r), (Code::PermissionDenied, "admin_only".into()));
    let r = users
        .find_user(as_(
            ADMIN,
            pb::FindUserRequest {
                email: "eve@example.com".into(),
            },
        ))
        .await;
    assert_eq!(refusal(r).0, Code::NotFound, "nothing was created");

    // The admin has no "me".
    let r = users.get_me(as_(ADMIN, pb::GetMeRequest {})).await;
    assert_eq!(
        refusal(r),
        (Code::PermissionDenied, "user_key_required".into())
    );
}

#[tokio::test]
async fn bad_input_names_its_fields_and_emails_stay_unique() {
    let server = Server::start().await;
    let (ada, ada_key) = server.user("ada@example.com").await;
    let (bob, _) = server.user("bob@example.com").await;
    let mut users = server.users();

    let r = users.create_user(as_(ADMIN, create("nope", None))).await;
    assert_eq!(bad_fields(r), ["email"]);
    let r = users
        .create_user(as_(ADMIN, create("eve@example.com", Some("Eve\u{7}"))))
        .await;
    assert_eq!(bad_fields(r), ["name"]);
    let r = users
        .create_user(as_(
            ADMIN,
            create("eve@example.com", Some(&"x".repeat(201))),
        ))
        .await;
    assert_eq!(bad_fields(r), ["name"]);
    let r = users
        .find_user(as_(
            ADMIN,
            pb::FindUserRequest {
                email: "not an email".into(),
            },
        ))
        .await;
    assert_eq!(bad_fields(r), ["email"]);
    let r = users
        .update_user(as_(
            &ada_key,
            pb::UpdateUserRequest {
                id: ada.clone(),
                email: Some("ada@".into()),
                name: None,
            },
        ))
        .await;
    assert_eq!(bad_fields(r), ["email"]);
    let r = users
        .create_key(as_(
            ADMIN,
            pb::CreateKeyRequest {
                user_id: ada.clone(),
                scopes: vec!["jobs:read".into(), "root".into(), "jobs:write".into()],
            },
        ))
        .await;
    assert_eq!(bad_fields(r), ["scopes[1]"]);
    let keys = users
        .list_keys(keys_of(ADMIN, &ada))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(keys.keys.len(), 1, "a refused key is not issued");

    // An email that another user has is refused, whatever its case.
    let r = users
        .update_user(as_(
            ADMIN,
            pb::UpdateUserRequest {
                id: bob.clone(),
                email: Some("ADA@example.com".into()),
                name: None,
            },
        ))
        .await;
    assert_eq!(refusal(r), (Code::AlreadyExists, "email_taken".into()));
    let got = users
        .get_user(as_(ADMIN, pb::GetUserRequest { id: bob }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.email, "bob@example.com");
}
