//! Issue #14: the laptop's egress allow-list on real parts. The rules `secureconsult-kiosk
//! firewall-rules` makes from an enrolment record, loaded with nft in network namespaces the test
//! made: the kiosk user reaches the care server's and the TURN relay's ports and nothing else (another
//! port, another address, either transport), other users are not confined, and the posture's
//! firewall probe sees the rules in force.

use crate::support::run_ok as run;
use sc_e2e::link::{Link, Profile, Side};
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The kiosk user in these namespaces: a uid with no account (the rules match the uid).
const KIOSK_UID: &str = "64123";
/// The distribution's interpreter: the kiosk uid cannot reach a per-user one under /root.
const PYTHON: &str = "/usr/bin/python3";

/// Listens on TCP and echoes UDP on each `proto:host:port` given, then prints "ready".
const LISTEN: &str = r#"
import socket, sys, threading
socks = []
for spec in sys.argv[1:]:
    proto, host, port = spec.split(":")
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    s = socket.socket(socket.AF_INET, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, int(port)))
    if proto == "tcp":
        s.listen(16)
    socks.append((proto, s))
def serve(proto, s):
    while True:
        if proto == "tcp":
            c, _ = s.accept(); c.close()
        else:
            data, peer = s.recvfrom(2048); s.sendto(data, peer)
for proto, s in socks:
    threading.Thread(target=serve, args=(proto, s), daemon=True).start()
print("ready", flush=True)
sys.stdin.read()
"#;

/// Tries each `proto:host:port[@srchost:srcport]`: "open" (a TCP connection, a UDP echo), else the
/// errno's name or "timeout" (2 s). One line each.
const PROBE: &str = r#"
import errno, socket, sys
for spec in sys.argv[1:]:
    target, _, source = spec.partition("@")
    proto, host, port = target.split(":")
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    s = socket.socket(socket.AF_INET, kind)
    s.settimeout(2)
    try:
        if source:
            src_host, src_port = source.split(":")
            s.bind((src_host, int(src_port)))
        if proto == "tcp":
            s.connect((host, int(port)))
        else:
            s.sendto(b"ping", (host, int(port)))
            s.recvfrom(64)
        print(spec, "open")
    except socket.timeout:
        print(spec, "timeout")
    except OSError as e:
        print(spec, errno.errorcode.get(e.errno, str(e.errno)))
"#;

struct Listener(Child);

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What each target gives `uid` from the kiosk's namespace.
fn probe(link: &Link, uid: &str, targets: &[String]) -> Vec<(String, String)> {
    let out = run(link
        .command(Side::Kiosk, "setpriv")
        .args(["--reuid", uid, "--regid", uid, "--clear-groups", PYTHON, "-c", PROBE])
        .args(targets));
    out.lines()
        .map(|l| {
            let (spec, verdict) = l.rsplit_once(' ').expect("spec verdict");
            (spec.to_owned(), verdict.to_owned())
        })
        .collect()
}

/// An enrolment record naming the hospital's care server and TURN relay, in `dir`.
fn record_in(dir: &Path, hospital: Ipv4Addr) {
    crate::support::record_naming(
        dir,
        &format!("https://{hospital}:8443"),
        &[
            format!("turn:{hospital}:3478?transport=udp"),
            format!("turn:{hospital}:3478?transport=tcp"),
            format!("turns:{hospital}:443?transport=tcp"),
        ],
    );
}

/// The posture's firewall item as the kiosk uid sees it from its namespace.
fn firewall_seen(link: &Link, kiosk: &Path) -> serde_json::Value {
    let out = run(link
        .command(Side::Kiosk, "setpriv")
        .args(["--reuid", KIOSK_UID, "--regid", KIOSK_UID, "--clear-groups"])
        .arg(kiosk)
        .args(["posture"])
        .env("RUST_LOG", "warn"));
    let report: serde_json::Value = serde_json::from_str(&out).expect("posture JSON");
    report["firewall"].clone()
}

#[test]
fn issue_14_the_generated_rules_let_the_kiosk_user_reach_the_server_and_turn_and_nothing_else() {
    let link = Link::new(Profile::unshaped());
    let hospital = link.addr(Side::Hospital);
    let [a, b, c, _] = hospital.octets();
    let elsewhere = Ipv4Addr::new(a, b, c, 3);
    run(link.command(Side::Hospital, "ip").args([
        "addr",
        "add",
        &format!("{elsewhere}/24"),
        "dev",
        Side::Hospital.veth(),
    ]));
    // A default route, as a laptop has: the firewall probe's address is then routed, not unreachable.
    run(link.command(Side::Kiosk, "ip").args(["route", "add", "default", "via", &hospital.to_string()]));

    let dir = tempfile::tempdir().expect("dir");
    record_in(dir.path(), hospital);
    let rules = run(Command::new(sc_e2e::bin("secureconsult-kiosk")).args(["--data-dir"]).arg(dir.path()).args([
        "firewall-rules",
        "--user",
        KIOSK_UID,
    ]));
    assert!(rules.contains(&format!("ip daddr {hospital} tcp dport 8443 accept")), "{rules}");

    let specs = |list: &[(&str, Ipv4Addr, u16)]| -> Vec<String> {
        list.iter().map(|(p, h, port)| format!("{p}:{h}:{port}")).collect()
    };
    // The kiosk's TURN-over-TLS tunnel (issue #17) listens on one loopback port: the engine's
    // TURN clients reach it from the laptop's own address and it answers them (as the kiosk user
    // too); any other loopback port stays closed, also to a socket on the tunnel's port.
    let tunnel = sc_core::firewall::RELAY_TUNNEL_PORT;
    let lo = Ipv4Addr::LOCALHOST;
    let kiosk_addr = link.addr(Side::Kiosk);
    let mut allowed = specs(&[
        ("tcp", hospital, 8443),
        ("udp", hospital, 3478),
        ("tcp", hospital, 3478),
        ("tcp", hospital, 443),
        ("udp", lo, tunnel),
    ]);
    allowed.push(format!("udp:{lo}:{tunnel}@{kiosk_addr}:0"));
    let mut refused = specs(&[
        ("udp", lo, tunnel + 1),
        ("tcp", hospital, 22),
        ("udp", hospital, 3479),
        ("udp", hospital, 8443),
        ("tcp", elsewhere, 8443),
        ("udp", elsewhere, 3478),
    ]);
    refused.push(format!("udp:{lo}:{}@127.0.0.2:{tunnel}", tunnel + 1));
    let every: Vec<String> = allowed.iter().chain(&refused).cloned().collect();
    // Listeners for each target (a source given or not).
    let targets: Vec<String> = every.iter().map(|s| s.split('@').next().unwrap_or(s).to_owned()).collect();
    let (remote, mut local): (Vec<String>, Vec<String>) =
        targets.iter().cloned().partition(|s| !s.contains(":127.0.0.1:"));
    local.sort();
    local.dedup();
    // The hospital's services, and the loopback ones in the laptop's namespace as the kiosk user
    // (the tunnel is the kiosk's own: its answers leave as that user too).
    let mut hospital_side = link.command(Side::Hospital, PYTHON);
    hospital_side.args(["-c", LISTEN]).args(&remote);
    let mut laptop_side = link.command(Side::Kiosk, "setpriv");
    laptop_side.args(["--reuid", KIOSK_UID, "--regid", KIOSK_UID, "--clear-groups", PYTHON, "-c", LISTEN]).args(&local);
    let _listeners: Vec<Listener> = [hospital_side, laptop_side]
        .into_iter()
        .map(|mut cmd| {
            cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
            let mut listener = Listener(cmd.spawn().expect("listeners"));
            let mut ready = String::new();
            BufReader::new(listener.0.stdout.as_mut().expect("stdout")).read_line(&mut ready).expect("read");
            assert_eq!(ready.trim(), "ready");
            listener
        })
        .collect();

    let kiosk = crate::support::runnable_by_anyone(&sc_e2e::bin("secureconsult-kiosk"), dir.path());
    // Without the rules every target answers, and the probe finds no firewall.
    for (spec, verdict) in probe(&link, KIOSK_UID, &every) {
        assert_eq!(verdict, "open", "{spec} before the rules");
    }
    assert_eq!(firewall_seen(&link, &kiosk), serde_json::json!(false));

    let mut nft = link.command(Side::Kiosk, "nft").args(["-f", "-"]).stdin(Stdio::piped()).spawn().expect("nft");
    nft.stdin.take().expect("stdin").write_all(rules.as_bytes()).expect("rules to nft");
    assert!(nft.wait().expect("nft").success(), "nft loads the generated rules");

    for (spec, verdict) in probe(&link, KIOSK_UID, &every) {
        // Dropped on the laptop: a datagram's send fails with EPERM; a TCP SYN is only retried by
        // the kernel, so the connection never opens.
        let expected = match (allowed.contains(&spec), spec.starts_with("udp")) {
            (true, _) => "open",
            (false, true) => "EPERM",
            (false, false) => "timeout",
        };
        assert_eq!(verdict, expected, "{spec} as the kiosk user");
    }
    // (The loopback listeners are the kiosk user's own: only the tunnel's port may answer.)
    let from_others: Vec<String> =
        remote.iter().chain(allowed.iter().filter(|s| s.contains(":127.0.0.1:"))).cloned().collect();
    for (spec, verdict) in probe(&link, "0", &from_others) {
        assert_eq!(verdict, "open", "{spec}: another user is not confined");
    }
    assert_eq!(firewall_seen(&link, &kiosk), serde_json::json!(true), "the posture sees the rules in force");
    // Loading twice replaces the table (the boot unit may run again).
    let mut nft = link.command(Side::Kiosk, "nft").args(["-f", "-"]).stdin(Stdio::piped()).spawn().expect("nft");
    nft.stdin.take().expect("stdin").write_all(rules.as_bytes()).expect("rules to nft");
    assert!(nft.wait().expect("nft").success());
    let listed = run(link.command(Side::Kiosk, "nft").args(["list", "ruleset"]));
    assert_eq!(listed.matches("table inet secureconsult_kiosk").count(), 1, "{listed}");
}
