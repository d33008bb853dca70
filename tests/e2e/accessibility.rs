//! Issue #16 item 4: an accessibility audit with axe-core in headless Chromium of the consultant's
//! page (with its outcome-note form), the admin page and the prison team's page (signed out and
//! signed in, with something listed, a note open) and of every screen of the kiosk's own page:
//! no serious or critical violation. Every finding is printed.

use crate::support::unlocked;
use sc_e2e::browser::Driver;
use sc_e2e::CareServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_16_no_page_has_a_serious_or_critical_accessibility_violation() {
    let server = CareServer::start().await;
    let dr = server.add_consultant("dr.who", "Dr Who");
    let it = server.add_it("it.sam", "Sam (IT)");
    let nurse = server.add_nurse("nurse.t", "Terry Nurse", "HMP Testshire");
    // One consultation with its note (the team lists it), one begun without (the consultant's
    // page offers its note form).
    let noted = server.add_booking("dr.who", "HMP Testshire", -40, "B2345CD", "AB");
    server.add_outcome_note(noted.id, "Healing well.", "urgent");
    server.add_booking("dr.who", "HMP Testshire", 0, "A1234BC", "JS");
    // A laptop, so the admin page lists one.
    let (_laptop, _kiosk) = unlocked(&server, "HMP Testshire", "nurse.a").await;
    let mut driver = Driver::audit(&server, ("dr.who", &dr), ("it.sam", &it), ("nurse.t", &nurse));
    let mut pages = Vec::new();
    let mut blocking = Vec::new();
    loop {
        let e = driver.wait_for("the audit", 120, |v| (v["event"] != "console").then(|| v.clone())).await;
        if e["event"] == "done" {
            break;
        }
        let page = e["page"].as_str().unwrap_or_default().to_owned();
        for v in e["violations"].as_array().into_iter().flatten() {
            let line = format!("{page}: {} ({}): {} at {}", v["id"], v["impact"], v["help"], v["nodes"]);
            println!("{line}");
            if matches!(v["impact"].as_str(), Some("serious" | "critical")) {
                blocking.push(line);
            }
        }
        pages.push(page);
    }
    println!("audited: {pages:?}");
    assert!(pages.len() >= 12, "every page and kiosk screen audited: {pages:?}");
    assert!(blocking.is_empty(), "serious or critical violations:\n{}", blocking.join("\n"));
}
