//! `levqor.v1.ScreeningService` through the generated client: free text, the rule set, and
//! appeals against refused jobs with the admin's decisions.

mod support;

use levqor_grpc::pb;
use serde_json::{Value, json};
use support::*;
use tonic::Code;
use tonic_types::StatusExt;

fn submit(message: &str, input: Value) -> pb::SubmitRequest {
    pb::SubmitRequest {
        workflow: Some(object(
            json!({"name": "t", "steps": [{"id": "a", "type": "log", "message": message}]}),
        )),
        input: Some(value(input)),
        ..Default::default()
    }
}

/// Submits a job that screening refuses; the id it was refused under (from `ErrorInfo`).
async fn refused_job(server: &Server, key: &str, message: &str) -> String {
    let status = server
        .jobs()
        .submit(as_(key, submit(message, json!({}))))
        .await
        .expect_err("the job should be refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let details = status.get_error_details();
    let info = details.error_info().expect("an ErrorInfo");
    assert_eq!(info.reason, "high_risk_content");
    let screening: Value = serde_json::from_str(&info.metadata["screening"]).unwrap();
    assert_eq!(screening["verdict"], "block", "{screening}");
    info.metadata["job_id"].clone()
}

fn rule(term: &str, category: &str, severity: &str) -> pb::Rule {
    pb::Rule {
        term: term.into(),
        category: category.into(),
        severity: severity.into(),
        unless: None,
        within: None,
    }
}

/// Whether the default rules are in force: they refuse laundering money.
fn refuses_laundering(rules: &[pb::Rule]) -> bool {
    rules
        .iter()
        .any(|r| r.term == "launder money" && r.severity == "critical")
}

#[tokio::test]
async fn free_text_is_screened_with_the_rules_in_force() {
    let server = Server::start().await;
    let (_, key) = server.user("ada@example.com").await;
    let mut screening = server.screening();
    let s = screening
        .screen(as_(
            &key,
            pb::ScreenRequest {
                text: "I need a divorce lawyer".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.verdict, "warn", "{s:?}");
    let found: Vec<(&str, &str, &str, &str)> = s
        .matches
        .iter()
        .map(|m| {
            (
                m.term.as_str(),
                m.category.as_str(),
                m.severity.as_str(),
                m.pointer.as_str(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("divorce", "legal", "medium", "/text"),
            (
                "legal.matter_for_a_professional",
                "legal",
                "medium",
                "/text"
            ),
            ("lawyer", "legal", "low", "/text")
        ]
    );
    let calm = screening
        .screen(as_(
            &key,
            pb::ScreenRequest {
                text: "Lovely weather today".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((calm.verdict.as_str(), calm.matches.len()), ("allow", 0));
    let evasive = screening
        .screen(as_(
            &key,
            pb::ScreenRequest {
                text: "how to l.a.u.n.d.e.r m0ney".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(evasive.verdict, "block", "{evasive:?}");
    assert_eq!(evasive.matches[0].term, "launder money");

    // The admin reads the default rules and replaces them.
    let defaults = screening
        .get_rules(as_(ADMIN, pb::GetRulesRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert!(
        refuses_laundering(&defaults.rules),
        "{} default rules",
        defaults.rules.len()
    );
    let mine = vec![
        rule("quantum widget", "financial", "critical"),
        rule("blue pill", "medical", "high"),
    ];
    let set = screening
        .set_rules(as_(
            ADMIN,
            pb::SetRulesRequest {
                rules: mine.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(set.rules, mine);
    let got = screening
        .get_rules(as_(ADMIN, pb::GetRulesRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.rules, mine);
    let s = screening
        .screen(as_(
            &key,
            pb::ScreenRequest {
                text: "sell the Quantum-Widget and a blue pill".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.verdict, "block");
    let terms: Vec<&str> = s.matches.iter().map(|m| m.term.as_str()).collect();
    assert_eq!(terms, ["quantum widget", "blue pill"]);
    let old = screening
        .screen(as_(
            &key,
            pb::ScreenRequest {
                text: "how to launder money".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(old.verdict, "allow", "the old rules are gone");
}

#[tokio::test]
async fn intents_lists_and_senses_go_through_and_matches_say_why() {
    let server = Server::start().await;
    let (_, key) = server.user("ada@example.com").await;
    let mut screening = server.screening();
    let list = |name: &str, terms: &[&str]| pb::WordList {
        name: name.into(),
        terms: terms.iter().map(|t| t.to_string()).collect(),
    };
    let mut dose = rule("dose", "medical", "medium");
    dose.unless = Some("dose_senses".into());
    dose.within = Some(3);
    let request = pb::SetRulesRequest {
        rules: vec![dose],
        lists: vec![
            list("act", &["prescribe"]),
            list("drug", &["insulin"]),
            list("no", &["without"]),
            list("pro", &["doctor"]),
            list("dose_senses", &["humour"]),
        ],
        intents: vec![
            pb::Intent {
                name: "removed".into(),
                action: "no".into(),
                subject: Some("pro".into()),
                window: Some(2),
                ordered: true,
                marks: Some("escalator".into()),
                ..Default::default()
            },
            pb::Intent {
                name: "medical.prescribes".into(),
                action: "act".into(),
                subject: Some("drug".into()),
                window: Some(3),
                category: Some("medical".into()),
                severity: Some("high".into()),
                escalated: Some("critical".into()),
                ..Default::default()
            },
        ],
        model: None,
    };
    let set = screening
        .set_rules(as_(ADMIN, request.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(set.rules, request.rules);
    assert_eq!(set.lists, request.lists);
    assert_eq!(set.intents, request.intents);
    let screen = |text: &str| pb::ScreenRequest { text: text.into() };
    let s = screening
        .screen(as_(&key, screen("Prescribe insulin without a doctor")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.verdict, "block");
    let because = s.matches[0].because.clone().expect("an explanation");
    assert_eq!(s.matches[0].term, "medical.prescribes");
    assert_eq!(
        (because.action.as_str(), because.subject.as_deref()),
        ("prescribe", Some("insulin"))
    );
    let mark = because.mark.expect("the escalator");
    assert_eq!(
        (mark.kind.as_str(), mark.intent.as_str()),
        ("escalator", "removed")
    );
    assert_eq!(mark.words, ["without", "doctor"]);
    let s = screening
        .screen(as_(&key, screen("a dose of humour")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((s.verdict.as_str(), s.matches.len()), ("allow", 0));
    // A reference to a list that does not exist is named at its field.
    let mut bad = request.clone();
    bad.intents[1].subject = Some("drugs".into());
    bad.intents[1].marks = Some("loudly".into());
    let r = screening.set_rules(as_(ADMIN, bad)).await;
    assert_eq!(bad_fields(r), ["intents[1].marks"]);
    let mut bad = request;
    bad.intents[1].subject = Some("drugs".into());
    let r = screening.set_rules(as_(ADMIN, bad)).await;
    assert_eq!(bad_fields(r), ["intents[1].subject"]);
}

/// Two weights of the learned stage, as the proto carries them.
fn weights(refuse: i32, flag: i32) -> pbjson_types::ListValue {
    let number = |n: i32| pbjson_types::Value {
        kind: Some(pbjson_types::value::Kind::NumberValue(f64::from(n))),
    };
    pbjson_types::ListValue {
        values: vec![number(refuse), number(flag)],
    }
}

#[tokio::test]
async fn a_learned_stage_goes_through_and_says_what_it_changed() {
    let server = Server::start().await;
    let (_, key) = server.user("ada@example.com").await;
    let mut screening = server.screening();
    let model = pb::Model {
        window: Some(8),
        escalate_at: 80,
        clear_below: 20,
        bias: vec![-3000, 0],
        weights: [
            ("every caller".to_owned(), weights(5000, 0)),
            ("pharmacist".to_owned(), weights(0, -4000)),
        ]
        .into_iter()
        .collect(),
    };
    let request = pb::SetRulesRequest {
        rules: vec![rule("insulin", "medical", "high")],
        model: Some(model.clone()),
        ..Default::default()
    };
    let set = screening
        .set_rules(as_(ADMIN, request))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(set.model, Some(model.clone()));
    let screen = |text: &str| pb::ScreenRequest { text: text.into() };
    let s = screening
        .screen(as_(
            &key,
            screen("tell every caller how much insulin to take"),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.verdict, "block");
    let learned = s.matches[0]
        .learned
        .clone()
        .expect("what the stage changed");
    assert_eq!(
        (learned.from.as_str(), learned.score, learned.words),
        ("high", 88, vec!["every caller".to_owned()])
    );
    let s = screening
        .screen(as_(&key, screen("the pharmacist restocks insulin")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.verdict, "warn");
    assert_eq!(s.matches[0].learned.as_ref().map(|l| l.score), Some(1));
    let s = screening
        .screen(as_(&key, screen("insulin arrives on Monday")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (s.verdict.as_str(), s.matches[0].learned.is_none()),
        ("hold", true)
    );
    // Every bad field of the model is named, and nothing changes.
    let mut bad = model;
    bad.escalate_at = 0;
    bad.weights.insert("Pharmacist".into(), weights(1, 1));
    bad.weights.insert("...".into(), weights(1, 1));
    bad.weights
        .insert("three whole words".into(), weights(1, 1));
    bad.bias = vec![1, 200_000];
    let r = screening
        .set_rules(as_(
            ADMIN,
            pb::SetRulesRequest {
                rules: vec![rule("insulin", "medical", "high")],
                model: Some(bad),
                ..Default::default()
            },
        ))
        .await;
    assert_eq!(
        bad_fields(r),
        [
            "model.escalate_at",
            "model.bias",
            "model.weights....",
            "model.weights.pharmacist",
            "model.weights.three whole words"
        ]
    );
    let got = screening
        .get_rules(as_(ADMIN, pb::GetRulesRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.model.map(|m| m.escalate_at), Some(80));
}

#[tokio::test]
async fn bad_rule_sets_name_their_fields_and_change_nothing() {
    let server = Server::start().await;
    let mut screening = server.screening();
    let r = screening
        .set_rules(as_(
            ADMIN,
            pb::SetRulesRequest {
                rules: vec![
                    rule("fine", "legal", "low"),
                    rule("x".repeat(101).as_str(), "medical", "high"),
                    rule("F.I.N.E", "financial", "high"),
                    rule("!!", "legal", "low"),
                ],
                ..Default::default()
            },
        ))
        .await;
    assert_eq!(
        bad_fields(r),
        ["rules[1].term", "rules[2].term", "rules[3].term"]
    );
    let r = screening
        .set_rules(as_(
            ADMIN,
            pb::SetRulesRequest {
                rules: vec![rule("horoscope", "astrology", "low")],
                ..Default::default()
            },
        ))
        .await;
    assert_eq!(bad_fields(r), ["rules[0].category"]);
    let r = screening
        .set_rules(as_(
            ADMIN,
            pb::SetRulesRequest {
                rules: vec![rule("horoscope", "legal", "dire")],
                ..Default::default()
            },
        ))
        .await;
    assert_eq!(bad_fields(r), ["rules[0].severity"]);
    let got = screening
        .get_rules(as_(ADMIN, pb::GetRulesRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert!(
        refuses_laundering(&got.rules),
        "a refused set changes nothing"
    );
}

/// An empty term is a bad term, named at its index as REST names it (`/rules/0/term`).
#[tokio::test]
async fn an_empty_rule_term_is_named_at_its_index() {
    let server = Server::start().await;
    let r = server
        .screening()
        .set_rules(as_(
            ADMIN,
            pb::SetRulesRequest {
                rules: vec![rule("", "legal", "low"), rule("fine", "legal", "low")],
                ..Default::default()
            },
        ))
        .await;
    let status = r.expect_err("an empty term is refused");
    let details = status.get_error_details();
    let violations: Vec<(String, String)> = details
        .bad_request()
        .map(|b| {
            b.field_violations
                .iter()
                .map(|v| (v.field.clone(), v.description.clone()))
                .collect()
        })
        .unwrap_or_default();
    let fields: Vec<&str> = violations.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(fields, ["rules[0].term"], "{violations:?}");
}

#[tokio::test]
async fn the_default_rules_go_back_as_they_came_learned_stage_and_all() {
    let server = Server::start().await;
    let mut screening = server.screening();
    let got = screening
        .get_rules(as_(ADMIN, pb::GetRulesRequest {}))
        .await
        .unwrap()
        .into_inner();
    let model = got
        .model
        .clone()
        .expect("the default rules have a learned stage");
    assert!(
        model.weights.len() > 1_000,
        "{} features",
        model.weights.len()
    );
    let set = screening
        .set_rules(as_(
            ADMIN,
            pb::SetRulesRequest {
                rules: got.rules.clone(),
                lists: got.lists.clone(),
                intents: got.intents.clone(),
                model: got.model.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(set, got);
    // A rule document may outgrow the limit of every other message; the service's other calls
    // keep it.
    let mut big = model;
    for i in 0..30_000 {
        big.weights.insert(format!("padding{i}"), weights(1, 1));
    }
    let request = pb::SetRulesRequest {
        rules: got.rules.clone(),
        lists: got.lists.clone(),
        intents: got.intents.clone(),
        model: Some(big),
    };
    assert!(prost::Message::encoded_len(&request) > levqor_grpc::MAX_MESSAGE_BYTES);
    let set = screening.set_rules(as_(ADMIN, request)).await.unwrap();
    assert!(set.into_inner().model.unwrap().weights.len() > 30_000);
    let text = "x".repeat(levqor_grpc::MAX_MESSAGE_BYTES + 1);
    let (_, key) = server.user("ada@example.com").await;
    let refused = screening
        .screen(as_(&key, pb::ScreenRequest { text }))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::OutOfRange, "{refused:?}");
}

#[tokio::test]
async fn the_rules_and_appeals_are_the_admins_and_a_key_is_needed() {
    let server = Server::start().await;
    let (_, key) = server.user("ada@example.com").await;
    let refused = refused_job(&server, &key, "how to launder money offshore").await;
    let mut screening = server.screening();

    let r = screening
        .screen(pb::ScreenRequest {
            text: "hello".into(),
        })
        .await;
    assert_eq!(
        refusal(r),
        (Code::Unauthenticated, "unauthenticated".into())
    );
    let r = screening
        .appeal(pb::AppealRequest {
            job_id: refused.clone(),
            reason: "please".into(),
        })
        .await;
    assert_eq!(refusal(r).0, Code::Unauthenticated);
    let r = screening.get_rules(pb::GetRulesRequest {}).await;
    assert_eq!(refusal(r).0, Code::Unauthenticated);
    let r = screening
        .set_rules(pb::SetRulesRequest {
            rules: vec![rule("anything", "legal", "low")],
            ..Default::default()
        })
        .await;
    assert_eq!(refusal(r).0, Code::Unauthenticated);
    let r = screening.list_appeals(pb::ListAppealsRequest {}).await;
    assert_eq!(refusal(r).0, Code::Unauthenticated);
    let r = screening
        .decide_appeal(pb::DecideAppealRequest {
            id: refused.clone(),
            approve: true,
            note: None,
        })
        .await;
    assert_eq!(refusal(r).0, Code::Unauthenticated);

    let admin_only = (Code::PermissionDenied, "admin_only".to_string());
    let r = screening.get_rules(as_(&key, pb::GetRulesRequest {})).await;
    assert_eq!(refusal(r), admin_only);
    let r = screening
        .set_rules(as_(
            &key,
            pb::SetRulesRequest {
                rules: vec![rule("anything", "legal", "low")],
                ..Default::default()
            },
        ))
        .await;
    assert_eq!(refusal(r), admin_only);
    let r = screening
        .list_appeals(as_(&key, pb::ListAppealsRequest {}))
        .await;
    assert_eq!(refusal(r), admin_only);
    screening
        .appeal(as_(
            &key,
            pb::AppealRequest {
                job_id: refused.clone(),
                reason: "it is a compliance course".into(),
            },
        ))
        .await
        .unwrap();
    let r = screening
        .decide_appeal(as_(
            &key,
            pb::DecideAppealRequest {
                id: refused.clone(),
                approve: true,
                note: None,
            },
        ))
        .await;
    assert_eq!(refusal(r), admin_only, "nobody approves their own appeal");
    let pending = screening
        .list_appeals(as_(ADMIN, pb::ListAppealsRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pending.appeals[0].appeal_status.as_deref(), Some("pending"));
}

#[tokio::test]
async fn a_refused_job_is_appealed_once_and_an_approval_admits_it() {
    let server = Server::start().await;
    let (ada_id, ada) = server.user("ada@example.com").await;
    let (_, bob) = server.user("bob@example.com").await;
    let mut screening = server.screening();
    let refused = refused_job(&server, &ada, "how to launder money offshore").await;
    let r = server
        .jobs()
        .get_job(as_(
            &ada,
            pb::GetJobRequest {
                id: refused.clone(),
            },
        ))
        .await;
    assert_eq!(refusal(r).0, Code::NotFound, "nothing was admitted");

    let appeal = |key: &str, job_id: &str, reason: &str| {
        as_(
            key,
            pb::AppealRequest {
                job_id: job_id.into(),
                reason: reason.into(),
            },
        )
    };
    // Another user's refusal reads as not found; an appeal needs a reason.
    let r = screening
        .appeal(appeal(&bob, &refused, "it is mine now"))
        .await;
    assert_eq!(refusal(r), (Code::NotFound, "not_found".into()));
    let r = screening
        .appeal(appeal(&ada, "0190a000-0000-7000-8000-000000000000", "why"))
        .await;
    assert_eq!(refusal(r).0, Code::NotFound);
    let r = screening.appeal(appeal(&ada, &refused, "   ")).await;
    assert_eq!(bad_fields(r), ["reason"]);
    let r = screening
        .appeal(appeal(&ada, &refused, &"x".repeat(2001)))
        .await;
    assert_eq!(bad_fields(r), ["reason"]);

    let record = screening
        .appeal(appeal(
            &ada,
            &refused,
            " it is a compliance training course ",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (record.id.as_str(), record.user_id.as_str()),
        (refused.as_str(), ada_id.as_str())
    );
    assert_eq!(record.appeal_status.as_deref(), Some("pending"));
    assert_eq!(
        record.appeal_reason.as_deref(),
        Some("it is a compliance training course")
    );
    assert_eq!(record.decision_note, None);
    let s = record.screening.as_ref().unwrap();
    assert_eq!(s.verdict, "block");
    assert_eq!(
        (
            s.matches[0].term.as_str(),
            s.matches[0].category.as_str(),
            s.matches[0].severity.as_str(),
            s.matches[0].pointer.as_str()
        ),
        (
            "launder money",
            "financial",
            "critical",
            "/workflow/steps/0/message"
        )
    );
    let request = json(record.request.as_ref().unwrap());
    assert_eq!(
        request["workflow"]["steps"][0]["message"], "how to launder money offshore",
        "{request}"
    );
    let r = screening.appeal(appeal(&ada, &refused, "again")).await;
    assert_eq!(refusal(r), (Code::AlreadyExists, "already_appealed".into()));

    // A held job is not refused: it waits for approval and cannot be appealed.
    let held = server
        .jobs()
        .submit(as_(
            &ada,
            submit("note", json!({"text": "renew my oxycodone prescription"})),
        ))
        .await
        .unwrap()
        .into_inner();
    let held_job = held.job.unwrap();
    assert_eq!(held_job.status, "awaiting_approval");
    let r = screening
        .appeal(appeal(&ada, &held_job.id, "it is my prescription"))
        .await;
    assert_eq!(refusal(r), (Code::Aborted, "not_appealable".into()));

    let pending = screening
        .list_appeals(as_(ADMIN, pb::ListAppealsRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pending.appeals, std::slice::from_ref(&record));

    let decided = screening
        .decide_appeal(as_(
            ADMIN,
            pb::DecideAppealRequest {
                id: refused.clone(),
                approve: true,
                note: Some("training material".into()),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let decision = decided.appeal.unwrap();
    assert_eq!(decision.id, refused);
    assert_eq!(decision.appeal_status.as_deref(), Some("approved"));
    assert_eq!(decision.decision_note.as_deref(), Some("training material"));
    let job = decided.job.expect("the approved job");
    assert_eq!(
        (job.id.as_str(), job.owner_id.as_str(), job.status.as_str()),
        (refused.as_str(), ada_id.as_str(), "queued")
    );
    let got = server
        .jobs()
        .get_job(as_(
            &ada,
            pb::GetJobRequest {
                id: refused.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.status, "queued");
    let r = screening
        .decide_appeal(as_(
            ADMIN,
            pb::DecideAppealRequest {
                id: refused.clone(),
                approve: false,
                note: None,
            },
        ))
        .await;
    assert_eq!(refusal(r), (Code::Aborted, "no_pending_appeal".into()));
    let left = screening
        .list_appeals(as_(ADMIN, pb::ListAppealsRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert!(left.appeals.is_empty(), "{left:?}");
    let mails = server.outbox_to("ada@example.com").await;
    assert!(
        mails.iter().any(
            |m| m.subject == format!("Your appeal for job {refused} was approved")
                && m.job_id.as_deref() == Some(refused.as_str())
        ),
        "the user hears the decision: {mails:?}"
    );
}

#[tokio::test]
async fn a_denied_appeal_keeps_the_refusal() {
    let server = Server::start().await;
    let (_, key) = server.user("ada@example.com").await;
    let mut screening = server.screening();
    let refused = refused_job(&server, &key, "what is a lethal dose of it").await;
    screening
        .appeal(as_(
            &key,
            pb::AppealRequest {
                job_id: refused.clone(),
                reason: "a pharmacology exam".into(),
            },
        ))
        .await
        .unwrap();
    let r = screening
        .decide_appeal(as_(
            ADMIN,
            pb::DecideAppealRequest {
                id: "not-an-id".into(),
                approve: false,
                note: None,
            },
        ))
        .await;
    assert_eq!(refusal(r).0, Code::NotFound);
    let decided = screening
        .decide_appeal(as_(
            ADMIN,
            pb::DecideAppealRequest {
                id: refused.clone(),
                approve: false,
                note: Some("not allowed here".into()),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let appeal = decided.appeal.unwrap();
    assert_eq!(appeal.appeal_status.as_deref(), Some("denied"));
    assert_eq!(appeal.decision_note.as_deref(), Some("not allowed here"));
    assert!(decided.job.is_none(), "nothing is admitted");
    let r = server
        .jobs()
        .get_job(as_(
            &key,
            pb::GetJobRequest {
                id: refused.clone(),
            },
        ))
        .await;
    assert_eq!(refusal(r).0, Code::NotFound);
    let denied = server
        .outbox_to("ada@example.com")
        .await
        .into_iter()
        .find(|m| m.subject.ends_with("was denied"))
        .expect("the user hears the decision");
    assert_eq!(denied.body, "The refusal stands: not allowed here");
}
