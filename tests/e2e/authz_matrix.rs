//! Issue #13: the authorization matrix. Every pair of (the staff member's role and prison) x (the
//! laptop's prison) x (the appointment's owner), for activation, web sign-in, join, admit, the
//! call's relay (what image sharing rides on), brick and the IT and consultant pages, on a real
//! server over real sockets: allowed or refused exactly as intended, printed as a table.

use crate::support::{creds, next, signalling, Laptop};
use sc_e2e::consultant;
use sc_e2e::CareServer;
use sc_proto::signal::{FromServer, ToServer};
use std::fmt::Write as _;

/// One cell of the matrix.
struct Check {
    action: &'static str,
    actor: String,
    target: String,
    expected: bool,
    got: bool,
}

#[derive(Default)]
struct Matrix(Vec<Check>);

impl Matrix {
    fn check(&mut self, action: &'static str, actor: &str, target: &str, expected: bool, got: bool) {
        self.0.push(Check { action, actor: actor.into(), target: target.into(), expected, got });
    }

    fn table(&self) -> String {
        let mut out = format!("{:<12} {:<34} {:<40} {:<8} {:<8}\n", "action", "actor", "target", "intended", "got");
        for c in &self.0 {
            let word = |b: bool| if b { "allowed" } else { "refused" };
            let mark = if c.expected == c.got { "" } else { "  <-- WRONG" };
            let _ = writeln!(
                out,
                "{:<12} {:<34} {:<40} {:<8} {:<8}{mark}",
                c.action,
                c.actor,
                c.target,
                word(c.expected),
                word(c.got)
            );
        }
        out
    }
}

fn client(server: &CareServer) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured(sc_core::tls::pinned(&server.ca_der).expect("tls"))
        .no_proxy()
        .build()
        .expect("client")
}

async fn status(server: &CareServer, method: &str, path: &str, cookie: &str, body: Option<serde_json::Value>) -> u16 {
    let c = client(server);
    let url = format!("{}{path}", server.url);
    let req = if method == "GET" { c.get(url) } else { c.post(url).json(&body.unwrap_or_default()) };
    req.header("cookie", cookie).send().await.expect("request").status().as_u16()
}

/// A reply to a join, admit or relay: allowed unless it is an error.
fn allowed(m: &FromServer) -> bool {
    !matches!(m, FromServer::Error { .. })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_13_the_authorization_matrix_holds_for_every_role_prison_and_owner() {
    let server = CareServer::start().await;
    server.add_prison("HMP Other");
    let nurse_here = server.add_nurse("nurse.here", "Nurse Here", "HMP Testshire");
    let nurse_other = server.add_nurse("nurse.other", "Nurse Other", "HMP Other");
    let dr_owner = server.add_consultant("dr.owner", "Dr Owner");
    let dr_else = server.add_consultant("dr.else", "Dr Else");
    let it = server.add_it("it.sam", "Sam (IT)");
    let here = server.add_appointment("dr.owner", "HMP Testshire", 0);
    let other_prison = server.add_appointment("dr.owner", "HMP Other", 0);
    let someone_elses = server.add_appointment("dr.else", "HMP Testshire", 0);
    // Issue #16: an outcome note of dr.owner's consultation at HMP Testshire.
    let note = server.add_outcome_note(here.id, "Matrix note.", "routine");
    let mut m = Matrix::default();

    // Activation of a laptop of HMP Testshire, by every role and prison.
    let laptop = Laptop::new().await;
    let record = laptop.enrol(&server, "HMP Testshire").await;
    for (who, secret, intended) in [
        ("nurse.other (nurse, HMP Other)", &nurse_other, false),
        ("dr.owner (consultant)", &dr_owner, false),
        ("it.sam (it)", &it, false),
        ("nurse.here (nurse, HMP Testshire)", &nurse_here, true),
    ] {
        let kiosk = laptop.kiosk();
        let username = who.split_whitespace().next().expect("name");
        let view = kiosk.sign_in(creds(username, sc_e2e::PASSWORD, CareServer::code(secret))).await;
        m.check(
            "activate",
            who,
            "laptop of HMP Testshire",
            intended,
            matches!(view, sc_core::KioskView::Unlocked { .. }),
        );
        if !intended {
            continue;
        }
        // Join: the laptop's own prison's rooms, whoever's appointment; not another prison's.
        let mut k = signalling(&kiosk).await.expect("signalling");
        for (appt, target, intended) in [
            (&other_prison, "HMP Other, dr.owner's", false),
            (&someone_elses, "HMP Testshire, dr.else's", true),
            (&here, "HMP Testshire, dr.owner's", true),
        ] {
            k.send(&ToServer::Join { room_code: appt.room_code.clone() }).await.expect("send");
            m.check("join", "laptop (nurse.here)", target, intended, allowed(&next(&mut k).await));
        }
        // Admit: only the appointment's own consultant (the laptop now waits in `here`).
        let mut owner = consult(&server, "dr.owner", &dr_owner).await;
        let mut other = consult(&server, "dr.else", &dr_else).await;
        other.send(&ToServer::Admit { appointment_id: here.id, patient_confirmed: false }).await;
        m.check(
            "admit",
            "dr.else (consultant)",
            "dr.owner's appointment",
            false,
            allowed(&after_rooms(&mut other).await),
        );
        owner.send(&ToServer::Admit { appointment_id: here.id, patient_confirmed: false }).await;
        m.check(
            "admit",
            "dr.owner (consultant)",
            "dr.owner's appointment",
            true,
            allowed(&after_rooms(&mut owner).await),
        );
        assert!(matches!(next(&mut k).await, FromServer::Admitted { .. }));
        // The call's relay (SDP, ICE; the image share rides on the call it sets up): its two
        // peers only.
        other.send(&ToServer::Offer { sdp: "v=0 intruder".into() }).await;
        m.check(
            "relay",
            "dr.else (not in the call)",
            "the laptop in the call",
            false,
            allowed(&after_rooms(&mut other).await),
        );
        owner.send(&ToServer::Answer { sdp: "v=0 answer".into() }).await;
        m.check(
            "relay",
            "dr.owner (in the call)",
            "the laptop in the call",
            true,
            matches!(next(&mut k).await, FromServer::Answer { .. }),
        );
    }

    // Web sign-in: each page admits one role (the team page: nurses).
    let mut cookies = std::collections::HashMap::new();
    for (username, secret, role) in
        [("nurse.here", &nurse_here, "nurse"), ("dr.else", &dr_else, "consultant"), ("it.sam", &it, "it")]
    {
        for (path, page_role) in [("/consult/login", "consultant"), ("/admin/login", "it"), ("/team/login", "nurse")] {
            // The page that admits the role last, so the code is spent only on success.
            if page_role == role {
                continue;
            }
            let got =
                consultant::login_at(&server.url, &server.ca_der, path, username, &CareServer::next_code(secret)).await;
            m.check("sign in", &format!("{username} ({role})"), path, false, got.is_ok());
        }
        if let Some(path) = match role {
            "consultant" => Some("/consult/login"),
            "it" => Some("/admin/login"),
            "nurse" => Some("/team/login"),
            _ => None,
        } {
            let got =
                consultant::login_at(&server.url, &server.ca_der, path, username, &CareServer::next_code(secret)).await;
            m.check("sign in", &format!("{username} ({role})"), path, true, got.is_ok());
            cookies.insert(role, got.unwrap_or_default());
        }
    }

    // The pages' data and actions, with each role's session.
    let device = record.device_id.to_string();
    for (role, cookie) in [("consultant", &cookies["consultant"]), ("nurse", &cookies["nurse"]), ("it", &cookies["it"])]
    {
        let actor = format!("a {role}'s session");
        for (action, path, intended) in [
            ("IT page", "/v1/admin/devices", role == "it"),
            ("IT page", "/v1/admin/staff", role == "it"),
            ("IT page", "/v1/admin/audit", role == "it"),
            ("consult", "/v1/consult/appointments", role == "consultant"),
            ("team page", "/v1/team/notes", role == "nurse"),
            ("team page", "/v1/team/appointments", role == "nurse"),
        ] {
            m.check(action, &actor, path, intended, status(&server, "GET", path, cookie, None).await == 200);
        }
        let brick = format!("/v1/admin/devices/{device}/brick");
        let intended = role == "it";
        // The consultant tries first: the laptop is still there for IT to brick.
        let got = status(&server, "POST", &brick, cookie, Some(serde_json::json!({ "reason": "matrix" }))).await == 200;
        m.check("brick", &actor, "laptop of HMP Testshire", intended, got);
    }
    m.check("brick", "no session", "laptop of HMP Testshire", false, {
        let brick = format!("/v1/admin/devices/{device}/brick");
        status(&server, "POST", &brick, "", Some(serde_json::json!({ "reason": "x" }))).await == 200
    });

    // Issue #16: an outcome note is its prison's team's and its consultant's; a booking is its
    // prison's team's to change.
    let got = consultant::login_at(
        &server.url,
        &server.ca_der,
        "/team/login",
        "nurse.other",
        &CareServer::next_code(&nurse_other),
    )
    .await;
    m.check("sign in", "nurse.other (nurse)", "/team/login", true, got.is_ok());
    let other_team = got.unwrap_or_default();
    let read = format!("/v1/team/notes/{note}");
    for (actor, cookie, path, intended) in [
        ("nurse.other (HMP Other's team)", &other_team, read.clone(), false),
        ("dr.else (another consultant)", &cookies["consultant"], format!("/v1/consult/notes/{note}"), false),
        ("nurse.here (HMP Testshire's team)", &cookies["nurse"], read.clone(), true),
    ] {
        let got = status(&server, "GET", &path, cookie, None).await == 200;
        m.check("read note", actor, "HMP Testshire's note", intended, got);
    }
    let ack = format!("/v1/team/notes/{note}/acknowledge");
    let got = status(&server, "POST", &ack, &other_team, None).await == 200;
    m.check("acknowledge note", "nurse.other (HMP Other's team)", "HMP Testshire's note", false, got);
    let cancel = format!("/v1/team/appointments/{}/cancel", someone_elses.id);
    let got = status(&server, "POST", &cancel, &other_team, Some(serde_json::json!({ "reason": "matrix" }))).await;
    m.check("cancel booking", "nurse.other (HMP Other's team)", "an HMP Testshire booking", false, got == 200);

    let table = m.table();
    println!("{table}");
    assert!(m.0.iter().all(|c| c.expected == c.got), "the matrix does not hold:\n{table}");
    assert_eq!(m.0.len(), 48, "every cell was tried:\n{table}");
}

async fn consult(server: &CareServer, username: &str, secret: &str) -> consultant::Consultant {
    let cookie =
        consultant::login(&server.url, &server.ca_der, username, &CareServer::code(secret)).await.expect("login");
    let mut c = consultant::connect(&server.url, &server.ca_der, &cookie, &server.url).await.expect("connect");
    assert!(matches!(c.recv().await, FromServer::WaitingRoom { .. }));
    c
}

/// The consultant's next message that is not a waiting-room update.
async fn after_rooms(c: &mut consultant::Consultant) -> FromServer {
    loop {
        match c.recv().await {
            FromServer::WaitingRoom { .. } => continue,
            other => return other,
        }
    }
}
