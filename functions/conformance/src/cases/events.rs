//! Certificate events and HTTP-01 answers.

use edgecert_core::ids::CertificateId;
use edgecert_core::model::{CertificateEvent, EventLevel, Http01Challenge};
use time::Duration;

use crate::Adapters;
use crate::fixtures::NOW;

/// Events list newest first, only the certificate's own, up to the limit.
pub async fn events_are_listed_newest_first_per_certificate(adapters: &Adapters) {
    let certificate = CertificateId::generate();
    let other = CertificateId::generate();
    for n in 0..5i64 {
        let event = CertificateEvent {
            certificate_id: certificate.clone(),
            at: NOW + Duration::seconds(n),
            step: format!("step{n}"),
            level: if n == 4 {
                EventLevel::Error
            } else {
                EventLevel::Info
            },
            message: format!("message {n}"),
            acme_problem: (n == 4).then(|| "urn:ietf:params:acme:error:dns".to_owned()),
        };
        adapters.store.append_event(&event).await.unwrap();
    }
    let foreign = CertificateEvent {
        certificate_id: other.clone(),
        at: NOW,
        step: "order".to_owned(),
        level: EventLevel::Info,
        message: "other".to_owned(),
        acme_problem: None,
    };
    adapters.store.append_event(&foreign).await.unwrap();

    let events = adapters.store.list_events(&certificate, 3).await.unwrap();
    let steps: Vec<_> = events.iter().map(|e| e.step.as_str()).collect();
    assert_eq!(steps, vec!["step4", "step3", "step2"]);
    assert_eq!(
        events[0].acme_problem.as_deref(),
        Some("urn:ietf:params:acme:error:dns")
    );
    assert_eq!(events[0].level, EventLevel::Error);
    assert_eq!(
        adapters.store.list_events(&other, 10).await.unwrap(),
        vec![foreign]
    );
}

/// HTTP-01 answers are readable by token until they expire or are deleted.
pub async fn http01_answers_round_trip_and_expire(adapters: &Adapters) {
    let challenge = Http01Challenge {
        token: "tok-Abc_123".to_owned(),
        key_authorization: "tok-Abc_123.thumbprint".to_owned(),
        expires_at: NOW + Duration::minutes(10),
    };
    adapters.store.put_http01(&challenge).await.unwrap();
    assert_eq!(
        adapters
            .store
            .get_http01(&challenge.token, NOW)
            .await
            .unwrap(),
        Some(challenge.clone())
    );
    assert_eq!(
        adapters
            .store
            .get_http01(&challenge.token, NOW + Duration::minutes(11))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        adapters.store.get_http01("other-token", NOW).await.unwrap(),
        None
    );
    adapters
        .store
        .delete_http01(&challenge.token)
        .await
        .unwrap();
    assert_eq!(
        adapters
            .store
            .get_http01(&challenge.token, NOW)
            .await
            .unwrap(),
        None
    );
    adapters
        .store
        .delete_http01(&challenge.token)
        .await
        .unwrap();
}
