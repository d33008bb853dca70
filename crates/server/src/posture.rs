//! Judging a laptop's posture against its prison's policy: pure rules, and for each failing item
//! the sentence the nurse reads and the word the audit log records. Per-prison policies
//! ([`PosturePolicy`], configuration) are kept in the database (`db::posture_policy`); a prison
//! without one has the server's default.

pub use crate::config::PosturePolicy;
use crate::conn::Conn;
use crate::db::{self, Device, PostureRecord};
use crate::{AppState, Error};
use sc_proto::Posture;

const DAY: i64 = 86_400;

/// When the posture is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// IT staff enrolling the laptop, outside the kiosk session.
    Enrolment,
    /// A nurse signing in, in the kiosk session.
    Activation,
}

/// A failing posture item.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failing {
    /// The root file system is not on dm-crypt (or that could not be told).
    RootNotEncrypted,
    /// Secure Boot is off (or could not be told).
    SecureBootOff,
    /// The kernel is not locked down.
    NoLockdown,
    /// The kiosk is not running in its session.
    NotInKioskSession,
    /// The kiosk's firewall is not in force.
    NoFirewall,
    /// A disallowed process is running.
    Process(String),
    /// A disallowed network interface is present.
    Interface(String),
    /// Packages have not been updated for this many days (`None`: never, as far as it knows).
    Unpatched(Option<i64>),
    /// The laptop's clock is this many seconds from the server's.
    ClockSkew(i64),
}

impl Failing {
    /// The item's word in the audit log.
    pub fn item(&self) -> String {
        match self {
            Failing::RootNotEncrypted => "root_not_encrypted".into(),
            Failing::SecureBootOff => "secure_boot_off".into(),
            Failing::NoLockdown => "no_lockdown".into(),
            Failing::NotInKioskSession => "not_in_kiosk_session".into(),
            Failing::NoFirewall => "no_firewall".into(),
            Failing::Process(p) => format!("process:{}", clean(p)),
            Failing::Interface(i) => format!("interface:{}", clean(i)),
            Failing::Unpatched(days) => format!("unpatched:{}", days.map_or("never".into(), |d| d.to_string())),
            Failing::ClockSkew(secs) => format!("clock_skew:{secs}"),
        }
    }

    /// What the nurse reads: what is wrong and what to do.
    pub fn sentence(&self) -> String {
        const RESTART: &str = "Restart the laptop; if this message comes back, return it to the IT team.";
        match self {
            Failing::RootNotEncrypted => "This laptop's disk is not encrypted. Do not use it: return it to the IT team.".into(),
            Failing::SecureBootOff => "Secure Boot is off on this laptop. Return it to the IT team to turn it back on.".into(),
            Failing::NoLockdown => "This laptop's system protection (kernel lockdown) is off. Return it to the IT team.".into(),
            Failing::NotInKioskSession => format!("SecureConsult is not running in its locked-down session. {RESTART}"),
            Failing::NoFirewall => format!("This laptop's network protection is not running. {RESTART}"),
            Failing::Process(p) => format!("A program that is not allowed is running on this laptop ({}). {RESTART}", clean(p)),
            Failing::Interface(i) => format!(
                "This laptop has a network connection that is not allowed ({}: Wi-Fi, mobile data, VPN or a USB adapter). Unplug any adapter and restart the laptop.",
                clean(i)
            ),
            Failing::Unpatched(Some(days)) => format!(
                "This laptop has not had its updates for {days} days. Return it to the IT team to update it."
            ),
            Failing::Unpatched(None) => "This laptop's updates cannot be checked. Return it to the IT team.".into(),
            Failing::ClockSkew(secs) => format!(
                "This laptop's clock is {} minutes {}. Ask the IT team to set it.",
                secs.unsigned_abs().div_ceil(60),
                if *secs > 0 { "fast" } else { "slow" }
            ),
        }
    }
}

/// A name from the laptop, as it may appear in a sentence or the audit log: printable ASCII
/// word characters, at most 32 of them.
fn clean(name: &str) -> String {
    name.chars().filter(|c| c.is_ascii_alphanumeric() || "-_.@".contains(*c)).take(32).collect()
}

/// Every item of `posture` that `policy` refuses at `now` (server time), in a fixed order.
pub fn judge(policy: &PosturePolicy, posture: &Posture, now: i64, when: When) -> Vec<Failing> {
    let mut failing = Vec::new();
    let in_session = when == When::Activation;
    if policy.require_encrypted_root && posture.root_encrypted != Some(true) {
        failing.push(Failing::RootNotEncrypted);
    }
    if policy.require_secure_boot && posture.secure_boot != Some(true) {
        failing.push(Failing::SecureBootOff);
    }
    if policy.require_lockdown && !matches!(posture.lockdown.as_str(), "integrity" | "confidentiality") {
        failing.push(Failing::NoLockdown);
    }
    if in_session && policy.require_kiosk_session && !posture.kiosk_session {
        failing.push(Failing::NotInKioskSession);
    }
    if in_session && policy.require_firewall && posture.firewall != Some(true) {
        failing.push(Failing::NoFirewall);
    }
    if in_session {
        if let Some(p) = posture.processes.iter().find(|p| policy.disallowed_processes.contains(p)) {
            failing.push(Failing::Process(p.clone()));
        }
    }
    if let Some(i) = posture
        .interfaces
        .iter()
        .find(|i| policy.disallowed_interfaces.iter().any(|prefix| i.starts_with(prefix.as_str())))
    {
        failing.push(Failing::Interface(i.clone()));
    }
    if let Some(max) = policy.max_patch_age_days {
        let age = posture.patched_at.map(|at| now.saturating_sub(at) / DAY);
        if age.is_none_or(|days| days > i64::from(max)) {
            failing.push(Failing::Unpatched(age));
        }
    }
    if let Some(max) = policy.max_clock_skew_secs {
        let skew = posture.clock.saturating_sub(now);
        if skew.unsigned_abs() > u64::from(max) {
            failing.push(Failing::ClockSkew(skew));
        }
    }
    failing
}

/// Judges `posture` against the device's prison's policy (or the server's default) and keeps it as
/// the device's last report. Returns what fails.
pub fn check(
    state: &AppState,
    c: &Conn<'_>,
    device: &Device,
    posture: &Posture,
    now: i64,
    when: When,
) -> Result<Vec<Failing>, Error> {
    let failing = judge(&policy_for(state, c, device.prison_id)?, posture, now, when);
    keep(c, &device.id, posture, &failing, now, when)?;
    Ok(failing)
}

/// The policy a prison's laptops are judged by: its own, or the server's default.
pub fn policy_for(state: &AppState, c: &Conn<'_>, prison_id: i64) -> Result<PosturePolicy, Error> {
    Ok(db::posture_policy(c, prison_id)?.unwrap_or_else(|| state.config.posture.clone()))
}

/// Keeps `posture` as the device's last report, with what failed.
pub fn keep(
    c: &Conn<'_>,
    device: &sc_proto::DeviceId,
    posture: &Posture,
    failing: &[Failing],
    now: i64,
    when: When,
) -> Result<(), Error> {
    let stage = match when {
        When::Enrolment => "enrolment",
        When::Activation => "activation",
    };
    let record = PostureRecord {
        at: now,
        stage: stage.into(),
        report: posture.clone(),
        failing: failing.iter().map(Failing::item).collect(),
    };
    db::record_posture(c, device, &record)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn sound() -> Posture {
        Posture {
            root_encrypted: Some(true),
            secure_boot: Some(true),
            lockdown: "integrity".into(),
            kiosk_session: true,
            firewall: Some(true),
            processes: vec!["cage".into(), "secureconsult-kiosk".into()],
            interfaces: vec!["eth0".into(), "lo".into()],
            patched_at: Some(NOW - 3 * DAY),
            clock: NOW + 5,
            ..Posture::default()
        }
    }

    #[test]
    fn a_sound_laptop_passes_production_and_anything_passes_the_default() {
        assert_eq!(judge(&PosturePolicy::production(), &sound(), NOW, When::Activation), vec![]);
        assert_eq!(judge(&PosturePolicy::default(), &Posture::default(), NOW, When::Activation), vec![]);
    }

    #[test]
    fn each_item_fails_alone_with_its_word_and_a_sentence() {
        let p = PosturePolicy::production();
        let cases: Vec<(Posture, Failing)> = vec![
            (Posture { root_encrypted: Some(false), ..sound() }, Failing::RootNotEncrypted),
            (Posture { root_encrypted: None, ..sound() }, Failing::RootNotEncrypted),
            (Posture { secure_boot: Some(false), ..sound() }, Failing::SecureBootOff),
            (Posture { lockdown: "none".into(), ..sound() }, Failing::NoLockdown),
            (Posture { kiosk_session: false, ..sound() }, Failing::NotInKioskSession),
            (Posture { firewall: Some(false), ..sound() }, Failing::NoFirewall),
            (Posture { processes: vec!["sshd".into()], ..sound() }, Failing::Process("sshd".into())),
            (Posture { interfaces: vec!["wlan0".into()], ..sound() }, Failing::Interface("wlan0".into())),
            (Posture { patched_at: Some(NOW - 50 * DAY), ..sound() }, Failing::Unpatched(Some(50))),
            (Posture { clock: NOW - 2 * 3600, ..sound() }, Failing::ClockSkew(-7200)),
        ];
        for (posture, expected) in cases {
            assert_eq!(judge(&p, &posture, NOW, When::Activation), vec![expected.clone()]);
            assert!(expected.sentence().ends_with('.') && expected.sentence().len() > 30, "{expected:?}");
        }
        assert_eq!(
            Failing::ClockSkew(-7200).sentence(),
            "This laptop's clock is 120 minutes slow. Ask the IT team to set it."
        );
        assert_eq!(Failing::Interface("wlan0".into()).item(), "interface:wlan0");
    }

    #[test]
    fn at_enrolment_the_session_items_are_not_judged() {
        let outside = Posture { kiosk_session: false, firewall: None, processes: vec!["sshd".into()], ..sound() };
        assert_eq!(judge(&PosturePolicy::production(), &outside, NOW, When::Enrolment), vec![]);
    }

    #[test]
    fn names_from_the_laptop_are_cleaned_before_they_are_shown_or_logged() {
        let f = Failing::Process("evil\n<script>name-that-goes-on-and-on-and-on-and-on".into());
        assert_eq!(f.item(), "process:evilscriptname-that-goes-on-and-");
        assert!(!f.sentence().contains('<') && !f.sentence().contains('\n'));
    }

    #[test]
    fn a_policy_parses_from_toml_and_refuses_unknown_keys() {
        let p: PosturePolicy = toml::from_str("require_secure_boot = true\nmax_clock_skew_secs = 60").expect("parse");
        assert!(p.require_secure_boot && p.max_clock_skew_secs == Some(60) && !p.require_firewall);
        assert!(toml::from_str::<PosturePolicy>("require_secureboot = true").is_err());
    }
}
