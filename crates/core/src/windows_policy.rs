//! The Windows lock-down, generated from the same endpoint list as the Linux allow-list
//! ([`crate::firewall::endpoints`]) so the two cannot drift: a Shell Launcher v2 configuration (the
//! kiosk is the kiosk account's only shell, restarted when it exits), an AppLocker policy (that
//! account runs the kiosk, its WebView2 runtime and Windows, less the shells and script hosts), and a
//! Windows Firewall script (all traffic out blocked, bar the kiosk program to its endpoints). Pure.
//! See policy/windows/README.md.

use crate::firewall::Endpoint;
use crate::Error;
use std::fmt::Write as _;

/// Where the Windows installer (Tauri's, `productName` SecureConsult) puts the kiosk, as Shell
/// Launcher and Windows Firewall spell an environment variable.
pub const KIOSK_EXE: &str = r"%ProgramFiles%\SecureConsult\secureconsult-kiosk.exe";
/// The same path as AppLocker spells it (its own path variables, upper case).
pub const KIOSK_EXE_APPLOCKER: &str = r"%PROGRAMFILES%\SecureConsult\secureconsult-kiosk.exe";
/// The Windows Firewall rule group the script owns: it removes and re-adds only these rules.
pub const FIREWALL_GROUP: &str = "SecureConsult kiosk";
/// The Shell Launcher profile's id: fixed, so a re-generated file replaces the same profile.
const PROFILE_ID: &str = "{6B0F2C55-7E43-4C8A-9A0B-2F1D5C3E8A71}";

/// The three files, each ready to write under the name its field gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowsPolicy {
    /// `ShellLauncher.xml`: the Shell Launcher v2 configuration.
    pub shell_launcher: String,
    /// `AppLocker.xml`: the AppLocker policy.
    pub applocker: String,
    /// `Firewall.ps1`: the Windows Firewall rules, as a PowerShell script.
    pub firewall: String,
}

impl WindowsPolicy {
    /// Each file's name and contents.
    pub fn files(&self) -> [(&'static str, &str); 3] {
        [
            ("ShellLauncher.xml", &self.shell_launcher),
            ("AppLocker.xml", &self.applocker),
            ("Firewall.ps1", &self.firewall),
        ]
    }
}

/// The policy for a kiosk running as the local account `account`, allowed to reach `endpoints`.
pub fn generate(endpoints: &[Endpoint], account: &str) -> Result<WindowsPolicy, Error> {
    crate::firewall::check_account(account)?;
    Ok(WindowsPolicy { shell_launcher: shell_launcher(account), applocker: applocker(), firewall: firewall(endpoints) })
}

fn shell_launcher(account: &str) -> String {
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(s, r#"<?xml version="1.0" encoding="utf-8"?>"#);
    let _ = writeln!(
        s,
        "<!-- SecureConsult kiosk: Shell Launcher v2, made by `secureconsult-kiosk windows-policy`.\n     \
         The account {account} gets the kiosk as its only shell: no Explorer, no Start menu, no\n     \
         taskbar, so nothing else can be opened from the desktop. Whatever way the kiosk exits,\n     \
         Shell Launcher starts it again. Every other account (IT staff) keeps Explorer. -->"
    );
    let _ = writeln!(
        s,
        r#"<ShellLauncherConfiguration xmlns="http://schemas.microsoft.com/ShellLauncher/2018/Configuration" xmlns:V2="http://schemas.microsoft.com/ShellLauncher/2019/Configuration">"#
    );
    let _ = writeln!(s, "  <Profiles>");
    let _ = writeln!(s, "    <DefaultProfile>");
    let _ = writeln!(s, r#"      <Shell Shell="%SystemRoot%\explorer.exe"/>"#);
    let _ = writeln!(s, "    </DefaultProfile>");
    let _ = writeln!(s, r#"    <Profile Id="{PROFILE_ID}" Name="SecureConsult kiosk">"#);
    let _ = writeln!(s, r#"      <Shell Shell="{KIOSK_EXE}" V2:AppType="Desktop" V2:AllAppsFullScreen="true">"#);
    let _ = writeln!(s, r#"        <DefaultAction Action="RestartShell"/>"#);
    let _ = writeln!(s, "      </Shell>");
    let _ = writeln!(s, "    </Profile>");
    let _ = writeln!(s, "  </Profiles>");
    let _ = writeln!(s, "  <Configs>");
    let _ = writeln!(s, "    <Config>");
    let _ = writeln!(s, r#"      <Account Name="{account}"/>"#);
    let _ = writeln!(s, r#"      <Profile Id="{PROFILE_ID}"/>"#);
    let _ = writeln!(s, "    </Config>");
    let _ = writeln!(s, "  </Configs>");
    let _ = writeln!(s, "</ShellLauncherConfiguration>");
    s
}

/// Everyone (the kiosk account is the laptop's only other account), and local Administrators.
const EVERYONE: &str = "S-1-1-0";
const ADMINISTRATORS: &str = "S-1-5-32-544";

/// Under %WINDIR%, what the kiosk account may not start, and why: shells, script hosts and
/// consoles that would run anything; programs that talk to the network or change the machine;
/// and the folders a standard user may write to (a copied program would otherwise run from there).
const WINDOWS_EXCEPTIONS: &[(&str, &str)] = &[
    (r"%SYSTEM32%\cmd.exe", "command shell"),
    (r"%SYSTEM32%\WindowsPowerShell\*", "PowerShell"),
    (r"%SYSTEM32%\wscript.exe", "script host"),
    (r"%SYSTEM32%\cscript.exe", "script host"),
    (r"%SYSTEM32%\mshta.exe", "HTML application host"),
    (r"%SYSTEM32%\regsvr32.exe", "loads any DLL"),
    (r"%SYSTEM32%\rundll32.exe", "loads any DLL"),
    (r"%SYSTEM32%\conhost.exe", "console host"),
    (r"%SYSTEM32%\reg.exe", "registry editor"),
    (r"%WINDIR%\regedit.exe", "registry editor"),
    (r"%SYSTEM32%\mmc.exe", "management consoles"),
    (r"%SYSTEM32%\Taskmgr.exe", "starts programs"),
    (r"%WINDIR%\explorer.exe", "the desktop shell"),
    (r"%SYSTEM32%\ftp.exe", "network client"),
    (r"%SYSTEM32%\curl.exe", "network client"),
    (r"%SYSTEM32%\OpenSSH\*", "network client"),
    (r"%SYSTEM32%\mstsc.exe", "remote desktop client"),
    (r"%WINDIR%\Microsoft.NET\*", "compilers and installers (msbuild, installutil)"),
    (r"%WINDIR%\Temp\*", "writable by users"),
    (r"%WINDIR%\Tasks\*", "writable by users"),
    (r"%WINDIR%\tracing\*", "writable by users"),
    (r"%WINDIR%\Registration\CRMLog\*", "writable by users"),
    (r"%SYSTEM32%\Tasks\*", "writable by users"),
    (r"%SYSTEM32%\spool\*", "writable by users"),
    (r"%SYSTEM32%\Microsoft\Crypto\RSA\MachineKeys\*", "writable by users"),
    (r"%SYSTEM32%\com\dmp\*", "writable by users"),
    (r"%SYSTEM32%\FxsTmp\*", "writable by users"),
];

/// One path rule: its id, name, who, what, and the paths excepted.
struct PathRule<'a> {
    id: &'a str,
    name: &'a str,
    sid: &'a str,
    path: &'a str,
    exceptions: &'a [(&'a str, &'a str)],
}

fn path_rule(s: &mut String, r: &PathRule<'_>) {
    let _ = writeln!(
        s,
        r#"    <FilePathRule Id="{}" Name="{}" Description="SecureConsult kiosk lock-down" UserOrGroupSid="{}" Action="Allow">"#,
        r.id, r.name, r.sid
    );
    let _ = writeln!(s, "      <Conditions>");
    let _ = writeln!(s, r#"        <FilePathCondition Path="{}"/>"#, r.path);
    let _ = writeln!(s, "      </Conditions>");
    if !r.exceptions.is_empty() {
        let _ = writeln!(s, "      <Exceptions>");
        for (path, why) in r.exceptions {
            let _ = writeln!(s, r#"        <!-- {why} -->"#);
            let _ = writeln!(s, r#"        <FilePathCondition Path="{path}"/>"#);
        }
        let _ = writeln!(s, "      </Exceptions>");
    }
    let _ = writeln!(s, "    </FilePathRule>");
}

/// Administrators may run anything in a collection; nobody else gets a rule, so nobody else runs
/// anything of that kind.
fn admins_only(s: &mut String, kind: &str, id: &str, why: &str) {
    let _ = writeln!(s, "  <!-- {kind}: {why} -->");
    let _ = writeln!(s, r#"  <RuleCollection Type="{kind}" EnforcementMode="Enabled">"#);
    if kind == "Appx" {
        // Packaged apps take publisher rules only.
        let _ = writeln!(
            s,
            r#"    <FilePublisherRule Id="{id}" Name="Administrators: any packaged app" Description="SecureConsult kiosk lock-down" UserOrGroupSid="{ADMINISTRATORS}" Action="Allow">"#
        );
        let _ = writeln!(s, "      <Conditions>");
        let _ = writeln!(s, r#"        <FilePublisherCondition PublisherName="*" ProductName="*" BinaryName="*">"#);
        let _ = writeln!(s, r#"          <BinaryVersionRange LowSection="0.0.0.0" HighSection="*"/>"#);
        let _ = writeln!(s, "        </FilePublisherCondition>");
        let _ = writeln!(s, "      </Conditions>");
        let _ = writeln!(s, "    </FilePublisherRule>");
    } else {
        path_rule(
            s,
            &PathRule { id, name: "Administrators: anything", sid: ADMINISTRATORS, path: "*", exceptions: &[] },
        );
    }
    let _ = writeln!(s, "  </RuleCollection>");
}

fn applocker() -> String {
    let mut s = String::new();
    let _ = writeln!(s, r#"<?xml version="1.0" encoding="utf-8"?>"#);
    let _ = writeln!(
        s,
        "<!-- SecureConsult kiosk: AppLocker, made by `secureconsult-kiosk windows-policy`. AppLocker\n     \
         runs only what a rule allows. The kiosk account (every account but Administrators) may\n     \
         start the kiosk, the WebView2 runtime it draws with, and Windows' own programs less the\n     \
         shells, script hosts and network clients below; no installer, no script, no Store app.\n     \
         Administrators (IT staff) are not confined. The Application Identity service (AppIDSvc)\n     \
         must run for AppLocker to enforce: see policy/windows/README.md. -->"
    );
    let _ = writeln!(s, r#"<AppLockerPolicy Version="1">"#);
    let _ = writeln!(s, "  <!-- Exe: the kiosk, WebView2 and Windows for everyone; anything for Administrators -->");
    let _ = writeln!(s, r#"  <RuleCollection Type="Exe" EnforcementMode="Enabled">"#);
    path_rule(
        &mut s,
        &PathRule {
            id: "2f6b1b7e-4a0c-4f3e-9d55-3c1a7e9b0d01",
            name: "SecureConsult kiosk",
            sid: EVERYONE,
            path: KIOSK_EXE_APPLOCKER,
            exceptions: &[],
        },
    );
    path_rule(
        &mut s,
        &PathRule {
            id: "2f6b1b7e-4a0c-4f3e-9d55-3c1a7e9b0d02",
            name: "WebView2 runtime (the kiosk's window)",
            sid: EVERYONE,
            path: r"%PROGRAMFILES%\Microsoft\EdgeWebView\Application\*",
            exceptions: &[],
        },
    );
    path_rule(
        &mut s,
        &PathRule {
            id: "2f6b1b7e-4a0c-4f3e-9d55-3c1a7e9b0d03",
            name: "Windows, less shells, script hosts, network clients and user-writable folders",
            sid: EVERYONE,
            path: r"%WINDIR%\*",
            exceptions: WINDOWS_EXCEPTIONS,
        },
    );
    path_rule(
        &mut s,
        &PathRule {
            id: "2f6b1b7e-4a0c-4f3e-9d55-3c1a7e9b0d04",
            name: "Administrators: anything",
            sid: ADMINISTRATORS,
            path: "*",
            exceptions: &[],
        },
    );
    let _ = writeln!(s, "  </RuleCollection>");
    admins_only(&mut s, "Msi", "2f6b1b7e-4a0c-4f3e-9d55-3c1a7e9b0d05", "only IT staff install software");
    admins_only(&mut s, "Script", "2f6b1b7e-4a0c-4f3e-9d55-3c1a7e9b0d06", "the kiosk account runs no script");
    admins_only(&mut s, "Appx", "2f6b1b7e-4a0c-4f3e-9d55-3c1a7e9b0d07", "the kiosk account runs no Store app");
    let _ = writeln!(s, "</AppLockerPolicy>");
    s
}

/// `text` as a PowerShell single-quoted string (where only `'` is special).
fn ps_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn firewall(endpoints: &[Endpoint]) -> String {
    let mut s = String::new();
    let group = ps_quote(FIREWALL_GROUP);
    let _ =
        writeln!(s, "# SecureConsult kiosk: Windows Firewall, made by `secureconsult-kiosk windows-policy` from the");
    let _ =
        writeln!(s, "# enrolment record (the same endpoints as the Linux allow-list). Windows Firewall lets a block");
    let _ = writeln!(s, "# rule win over any allow rule, so the allow-list is the other way round: nothing leaves the");
    let _ =
        writeln!(s, "# laptop (every profile's default outbound action is Block and every other outbound allow rule");
    let _ =
        writeln!(s, "# is disabled, bar Core Networking: DHCP and IPv6 neighbour discovery) except the kiosk program");
    let _ =
        writeln!(s, "# to these addresses and ports. No DNS: the endpoints are addresses. Nothing comes in unasked.");
    let _ =
        writeln!(s, "# Run as an administrator; it replaces the rules of an earlier run. Management traffic (Windows");
    let _ =
        writeln!(s, "# Update, Intune) needs rules of IT's own in this group's place: see policy/windows/README.md.");
    let _ = writeln!(s, "#Requires -RunAsAdministrator");
    let _ = writeln!(s, "$ErrorActionPreference = 'Stop'");
    let _ = writeln!(s, "$kiosk = {}", ps_quote(KIOSK_EXE));
    let _ = writeln!(
        s,
        "Set-NetFirewallProfile -Profile Domain,Private,Public -Enabled True -DefaultInboundAction Block -DefaultOutboundAction Block -NotifyOnListen False"
    );
    let _ = writeln!(s, "Get-NetFirewallRule -Group {group} -ErrorAction SilentlyContinue | Remove-NetFirewallRule");
    let _ = writeln!(s, "# Core Networking's group, as Windows names it whatever the display language.");
    let _ = writeln!(
        s,
        "Get-NetFirewallRule -Enabled True -Action Allow | Where-Object {{ $_.Group -ne '@FirewallAPI.dll,-25000' }} | Disable-NetFirewallRule"
    );
    for e in endpoints {
        let name = format!("SecureConsult kiosk to the {} {} ({} {})", e.role, e.host, e.transport.as_str(), e.port);
        let _ = writeln!(
            s,
            "New-NetFirewallRule -Group {group} -DisplayName {} -Direction Outbound -Action Allow -Program $kiosk -RemoteAddress {} -Protocol {} -RemotePort {} -Profile Any | Out-Null",
            ps_quote(&name),
            e.addr,
            e.transport.as_str().to_uppercase(),
            e.port
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::Transport;

    fn endpoint(host: &str, transport: Transport, port: u16) -> Endpoint {
        Endpoint { role: "TURN relay", host: host.into(), addr: host.parse().expect("ip"), transport, port }
    }

    #[test]
    fn each_endpoint_becomes_one_allow_rule_for_the_kiosk_program_and_nothing_else_is_allowed() {
        let policy = generate(
            &[endpoint("10.0.0.3", Transport::Udp, 3478), endpoint("fd00::3", Transport::Tcp, 443)],
            "sc-kiosk",
        )
        .expect("policy");
        let rules: Vec<&str> = policy.firewall.lines().filter(|l| l.starts_with("New-NetFirewallRule")).collect();
        assert_eq!(rules.len(), 2, "{}", policy.firewall);
        assert!(rules[0].contains("-RemoteAddress 10.0.0.3 -Protocol UDP -RemotePort 3478"), "{}", rules[0]);
        assert!(rules[1].contains("-RemoteAddress fd00::3 -Protocol TCP -RemotePort 443"), "{}", rules[1]);
        assert!(rules.iter().all(|r| r.contains("-Direction Outbound -Action Allow -Program $kiosk")));
        assert!(policy.firewall.contains("-DefaultOutboundAction Block"));
        assert!(policy.shell_launcher.contains(r#"<Account Name="sc-kiosk"/>"#));
        assert!(policy.shell_launcher.contains(KIOSK_EXE) && policy.firewall.contains(KIOSK_EXE));
        assert!(policy.applocker.contains(KIOSK_EXE_APPLOCKER));
    }

    #[test]
    fn a_host_name_cannot_break_out_of_its_quotes() {
        let mut e = endpoint("10.0.0.3", Transport::Udp, 3478);
        e.host = "x'; Remove-Item C:\\ -Recurse; '".into();
        let policy = generate(&[e], "sc-kiosk").expect("policy");
        assert!(policy.firewall.contains("x''; Remove-Item"), "{}", policy.firewall);
        assert!(generate(&[], "a\"/><Account Name=\"x").is_err(), "an account name cannot inject XML");
    }
}
