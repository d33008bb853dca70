//! Test helper: polls the server as the laptop in `<data dir>`, and when the answer is a verified
//! brick, wipes, stopping dead at `<step>` (printing "at <step>") so the test can kill -9 it there.
#![forbid(unsafe_code)]

use sc_core::keystore::Keystore;
use sc_core::wipe::Step;
use sc_core::Kiosk;

fn step(name: &str) -> Option<Step> {
    Some(match name {
        "tombstone" => Step::Tombstone,
        "config" => Step::Config,
        "receipt" => Step::Receipt,
        "keystore" => Step::Keystore,
        "files" => Step::Files,
        _ => return None,
    })
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(Some(stop))) = (args.next(), args.next().map(|s| step(&s))) else {
        eprintln!("usage: wipe-crasher <data dir> tombstone|config|receipt|keystore|files");
        std::process::exit(2);
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let kiosk = Kiosk::open(std::path::Path::new(&dir), Keystore::secret_service).expect("kiosk");
        let record = kiosk.record().expect("enrolled").clone();
        let (hello, challenge) = sc_core::channel::hello(&kiosk).await.expect("hello");
        let client = sc_core::client::client_for(&record).expect("client");
        let sc_proto::brick::ChannelDown::Brick { command } = client.poll(&hello).await.expect("poll") else {
            eprintln!("not bricked");
            std::process::exit(3);
        };
        let verified = sc_core::wipe::verify_command(&record, &command, challenge).expect("verified");
        sc_core::wipe::begin(
            kiosk.data_dir(),
            sc_proto::brick::WipeCause::Brick { command_id: verified.command_id },
            Some(command),
        )
        .expect("tombstone");
        let kiosk = Kiosk::open(std::path::Path::new(&dir), Keystore::secret_service).expect("reopen");
        let hook = move |s: Step| {
            if s == stop {
                println!("at {s:?}");
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        };
        kiosk.finish_wipe_with(&hook).await.expect("wipe");
    });
}
