//! Issue #14: the Windows lock-down `secureconsult-kiosk windows-policy` writes from an enrolment
//! record. It cannot run here (no Windows): its XML is validated with xmllint against
//! policy/windows/schema (the published schemas' constraints for what we emit), broken copies of it
//! are refused, and its firewall rules allow exactly what `firewall-rules` allows on Linux, from
//! the same record.

use crate::support::run_ok as run;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// (address, transport, port), as both rule sets spell them.
type Allowed = BTreeSet<(String, String, u16)>;

fn record_in(dir: &Path) {
    crate::support::record_naming(
        dir,
        "https://10.9.8.7:8443",
        &[
            "turn:10.9.8.7:3478?transport=udp".into(),
            "turn:10.9.8.7:3478?transport=tcp".into(),
            "turns:[fd00::7]".into(),
        ],
    );
}

fn kiosk(dir: &Path) -> Command {
    let mut cmd = Command::new(sc_e2e::bin("secureconsult-kiosk"));
    cmd.arg("--data-dir").arg(dir).env("RUST_LOG", "warn");
    cmd
}

/// What the nftables rules accept for the kiosk user.
fn nft_allowed(rules: &str) -> Allowed {
    rules
        .lines()
        .filter(|l| l.contains(" daddr ") && l.contains(" accept"))
        .map(|l| {
            // `ip daddr ADDR PROTO dport PORT accept ...`
            let t: Vec<&str> = l.split_whitespace().collect();
            assert_eq!((t[1], t[4]), ("daddr", "dport"), "{l}");
            (t[2].to_owned(), t[3].to_owned(), t[5].parse().expect("port"))
        })
        .collect()
}

/// The value after `flag` in a PowerShell command line.
fn arg<'a>(line: &'a str, flag: &str) -> &'a str {
    let mut t = line.split_whitespace();
    t.by_ref().find(|w| *w == flag).unwrap_or_else(|| panic!("{flag} in {line}"));
    t.next().unwrap_or_else(|| panic!("a value after {flag} in {line}"))
}

/// What the Windows Firewall script allows; every rule it adds must be an outbound allow for the
/// kiosk program.
fn windows_allowed(script: &str) -> Allowed {
    script
        .lines()
        .filter(|l| l.contains("New-NetFirewallRule"))
        .map(|l| {
            assert_eq!(arg(l, "-Direction"), "Outbound", "{l}");
            assert_eq!(arg(l, "-Action"), "Allow", "{l}");
            assert_eq!(arg(l, "-Program"), "$kiosk", "{l}");
            (
                arg(l, "-RemoteAddress").to_owned(),
                arg(l, "-Protocol").to_lowercase(),
                arg(l, "-RemotePort").parse().expect("port"),
            )
        })
        .collect()
}

fn schema(name: &str) -> PathBuf {
    sc_e2e::repo_root().join("policy/windows/schema").join(name)
}

/// xmllint's verdict on `xml` against `xsd`: Ok, or its complaint.
fn validate(xsd: &str, xml: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("policy.xml");
    std::fs::write(&file, xml).expect("write");
    let out = Command::new("xmllint")
        .args(["--noout", "--nonet", "--schema"])
        .arg(schema(xsd))
        .arg(&file)
        .output()
        .expect("xmllint (libxml2-utils; scripts/test.sh installs it)");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn issue_14_the_windows_policy_validates_and_allows_what_the_linux_rules_allow() {
    let dir = tempfile::tempdir().expect("dir");
    record_in(dir.path());
    let nft = run(kiosk(dir.path()).args(["firewall-rules"]));
    let out = dir.path().join("windows");
    run(kiosk(dir.path()).arg("windows-policy").arg("--out").arg(&out));
    let read = |name: &str| std::fs::read_to_string(out.join(name)).expect(name);
    let (shell, applocker, firewall) = (read("ShellLauncher.xml"), read("AppLocker.xml"), read("Firewall.ps1"));

    let expected: Allowed =
        [("10.9.8.7", "tcp", 8443), ("10.9.8.7", "tcp", 3478), ("10.9.8.7", "udp", 3478), ("fd00::7", "tcp", 5349)]
            .into_iter()
            .map(|(a, t, p)| (a.to_owned(), t.to_owned(), p))
            .collect();
    assert_eq!(nft_allowed(&nft), expected, "the Linux rules: {nft}");
    assert_eq!(windows_allowed(&firewall), expected, "the Windows rules: {firewall}");
    // Nothing else leaves: the default is Block and every other allow rule is switched off.
    assert!(firewall.contains("-DefaultOutboundAction Block"), "{firewall}");
    assert!(firewall.contains("| Disable-NetFirewallRule"), "{firewall}");

    // The one program: what Shell Launcher starts is what the firewall and AppLocker let through.
    let program = firewall.lines().find_map(|l| l.strip_prefix("$kiosk = ")).expect("the program");
    let program = program.trim_matches('\'');
    assert!(shell.contains(&format!(r#"<Shell Shell="{program}" V2:AppType="Desktop""#)), "{shell}");
    let applocker_path = program.replace("%ProgramFiles%", "%PROGRAMFILES%");
    assert!(applocker.contains(&format!(r#"<FilePathCondition Path="{applocker_path}"/>"#)), "{applocker}");
    assert!(shell.contains(&format!(r#"<Account Name="{}"/>"#, sc_core::posture::KIOSK_USER)), "{shell}");

    validate("shell-launcher.xsd", &shell).unwrap_or_else(|e| panic!("ShellLauncher.xml: {e}\n{shell}"));
    validate("applocker.xsd", &applocker).unwrap_or_else(|e| panic!("AppLocker.xml: {e}\n{applocker}"));

    // The schemas refuse what Windows would: each broken copy fails.
    let broken_shell = [
        ("a profile id without braces", shell.replacen("Id=\"{", "Id=\"", 1)),
        ("an unknown action", shell.replace("RestartShell", "Reboot")),
        ("an unknown app type", shell.replace("V2:AppType=\"Desktop\"", "V2:AppType=\"Win32\"")),
        ("configs before profiles", {
            let configs = &shell[shell.find("  <Configs>").expect("configs")
                ..shell.find("</ShellLauncherConfiguration>").expect("end")];
            shell.replace(configs, "").replace("  <Profiles>", &format!("{configs}  <Profiles>"))
        }),
    ];
    for (what, xml) in broken_shell {
        assert!(validate("shell-launcher.xsd", &xml).is_err(), "ShellLauncher.xml with {what} was accepted");
    }
    let ids: Vec<&str> = applocker.match_indices(" Id=\"").map(|(i, _)| &applocker[i + 5..i + 41]).collect();
    let broken_applocker = [
        ("an unknown action", applocker.replacen("Action=\"Allow\"", "Action=\"Permit\"", 1)),
        (
            "a group by name, not SID",
            applocker.replacen("UserOrGroupSid=\"S-1-1-0\"", "UserOrGroupSid=\"Everyone\"", 1),
        ),
        ("a rule id used twice", applocker.replacen(ids[1], ids[0], 1)),
        ("a rule without a description", applocker.replacen(" Description=\"SecureConsult kiosk lock-down\"", "", 1)),
        ("a second Exe collection", applocker.replace("Type=\"Msi\"", "Type=\"Exe\"")),
    ];
    for (what, xml) in broken_applocker {
        assert!(validate("applocker.xsd", &xml).is_err(), "AppLocker.xml with {what} was accepted");
    }
}

#[test]
fn issue_14_before_enrolment_the_windows_firewall_allows_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("windows");
    run(kiosk(dir.path()).arg("windows-policy").arg("--out").arg(&out));
    let firewall = std::fs::read_to_string(out.join("Firewall.ps1")).expect("Firewall.ps1");
    assert_eq!(windows_allowed(&firewall), Allowed::new(), "{firewall}");
    assert!(firewall.contains("-DefaultOutboundAction Block"), "{firewall}");
    let shell = std::fs::read_to_string(out.join("ShellLauncher.xml")).expect("ShellLauncher.xml");
    validate("shell-launcher.xsd", &shell).unwrap_or_else(|e| panic!("{e}"));
}
