//! The kiosk's Tauri commands through the mock runtime (no display): the page's view of each state,
//! errors as `{kind, message}` in the core's words, the command list against the capability file,
//! and a lock from a synchronous command reaching the server.

use sc_core::keystore::Keystore;
use sc_core::Kiosk;
use serde_json::{json, Value};
use tauri::ipc::{CallbackFn, InvokeBody};
use tauri::test::{get_ipc_response, mock_builder, INVOKE_KEY};
use tauri::webview::InvokeRequest;
use tauri::WebviewWindowBuilder;

fn invoke(webview: &tauri::WebviewWindow<tauri::test::MockRuntime>, cmd: &str, args: Value) -> Result<Value, Value> {
    invoke_from(webview, "tauri://localhost", cmd, args)
}

fn invoke_from(
    webview: &tauri::WebviewWindow<tauri::test::MockRuntime>,
    origin: &str,
    cmd: &str,
    args: Value,
) -> Result<Value, Value> {
    let request = InvokeRequest {
        cmd: cmd.into(),
        callback: CallbackFn(0),
        error: CallbackFn(1),
        url: origin.parse().expect("url"),
        body: InvokeBody::Json(args),
        headers: Default::default(),
        invoke_key: INVOKE_KEY.to_string(),
    };
    get_ipc_response(webview, request).map(|b| b.deserialize::<Value>().expect("json"))
}

fn app_with(kiosk: Kiosk) -> (tauri::App<tauri::test::MockRuntime>, tauri::WebviewWindow<tauri::test::MockRuntime>) {
    // The real generated context: the page's capability file decides what it may call.
    let app = sc_kiosk::wire(mock_builder(), kiosk, sc_kiosk::calls::Calls::new(sc_kiosk::calls::media_from_env()))
        .build(tauri::generate_context!(test = true))
        .expect("app");
    let webview = WebviewWindowBuilder::new(&app, "main", Default::default()).build().expect("webview");
    (app, webview)
}

#[test]
fn an_unenrolled_laptop_shows_not_enrolled_and_refuses_sign_in() {
    let dir = tempfile::tempdir().expect("dir");
    let (_app, w) = app_with(Kiosk::open(dir.path(), Keystore::secret_service).expect("kiosk"));
    assert_eq!(invoke(&w, "kiosk_status", json!({})), Ok(json!({ "screen": "not_enrolled" })));
    let view = invoke(&w, "sign_in", json!({ "username": "nurse", "password": "pw", "code": "123456" }));
    assert_eq!(view, Ok(json!({ "screen": "not_enrolled" })), "nothing but 'Not enrolled'");
    assert_eq!(invoke(&w, "lock", json!({})), Ok(json!({ "screen": "not_enrolled" })));
    assert_eq!(invoke(&w, "check_server", json!({})), Ok(json!({ "screen": "not_enrolled" })));
    assert_eq!(invoke(&w, "activity", json!({})), Ok(Value::Null));
    // The nurse's controls over shared images are allowed, and do nothing without a call.
    assert_eq!(invoke(&w, "reset_view", json!({})), Ok(Value::Null));
    assert_eq!(invoke(&w, "pause_images", json!({})), Ok(Value::Null));
}

#[test]
fn bad_input_is_a_kind_and_a_message() {
    let dir = tempfile::tempdir().expect("dir");
    let (_app, w) = app_with(Kiosk::open(dir.path(), Keystore::secret_service).expect("kiosk"));
    for (args, message) in [
        (json!({ "username": "", "password": "pw", "code": "123456" }), "Enter your user name."),
        (json!({ "username": "n", "password": "", "code": "123456" }), "Enter your password."),
        (
            json!({ "username": "n", "password": "pw", "code": "12a456" }),
            "The code is the 6 digits shown in your authenticator.",
        ),
    ] {
        assert_eq!(invoke(&w, "sign_in", args), Err(json!({ "kind": "invalid_input", "message": message })));
    }
    let missing = invoke(&w, "sign_in", json!({ "username": "n" }));
    assert!(missing.is_err(), "missing arguments are refused: {missing:?}");
}

#[test]
fn another_window_or_a_remote_page_gets_no_command() {
    let dir = tempfile::tempdir().expect("dir");
    let kiosk = Kiosk::open(dir.path(), Keystore::secret_service).expect("kiosk");
    let app = sc_kiosk::wire(mock_builder(), kiosk, sc_kiosk::calls::Calls::new(sc_kiosk::calls::media_from_env()))
        .build(tauri::generate_context!(test = true))
        .expect("app");
    let other = WebviewWindowBuilder::new(&app, "other", Default::default()).build().expect("webview");
    let denied = invoke(&other, "kiosk_status", json!({}));
    assert!(matches!(&denied, Err(Value::String(m)) if m.contains("not allowed")), "{denied:?}");
    let main = WebviewWindowBuilder::new(&app, "main", Default::default()).build().expect("webview");
    let remote = invoke_from(&main, "https://example.org", "kiosk_status", json!({}));
    assert!(
        matches!(&remote, Err(Value::String(m)) if m.contains("not allowed")),
        "a remote page gets nothing: {remote:?}"
    );
}

#[test]
fn navigation_is_limited_to_the_app() {
    for ok in ["tauri://localhost/index.html", "http://tauri.localhost/index.html"] {
        assert!(sc_kiosk::window::navigation_allowed(&ok.parse().expect("url")), "{ok}");
    }
    for bad in
        ["https://example.org/", "http://127.0.0.1:8443/", "file:///etc/passwd", "tauri://evil/", "data:text/html,hi"]
    {
        assert!(!sc_kiosk::window::navigation_allowed(&bad.parse().expect("url")), "{bad}");
    }
}

#[test]
fn sign_in_and_lock_through_the_commands_against_a_real_server() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let server = rt.block_on(sc_e2e::CareServer::start());
    let secret = server.add_nurse("nurse.jo", "Jo Nurse", "HMP Testshire");
    let dir = tempfile::tempdir().expect("dir");
    let data = sc_core::record::DataDir::open(dir.path()).expect("data");
    let keystore = Keystore::secret_service().expect("the Secret Service must run (scripts/test.sh starts it)");
    let token = server.token("HMP Testshire").parse().expect("token");
    rt.block_on(sc_core::enrol::enrol(&data, &keystore, &server.url, &token)).expect("enrol");

    let (app, w) = app_with(Kiosk::open(dir.path(), Keystore::secret_service).expect("kiosk"));
    assert_eq!(invoke(&w, "check_server", json!({})), Ok(json!({ "screen": "locked", "notice": null })));
    let args =
        json!({ "username": "nurse.jo", "password": sc_e2e::PASSWORD, "code": sc_e2e::CareServer::code(&secret) });
    let view = invoke(&w, "sign_in", args).expect("view");
    assert_eq!(view["screen"], "unlocked", "{view}");
    assert_eq!(view["prison"], "HMP Testshire");
    assert_eq!(view["staff"], "Jo Nurse");
    assert_eq!(invoke(&w, "activity", json!({})), Ok(Value::Null));
    let kiosk = tauri::Manager::state::<std::sync::Arc<Kiosk>>(&app).inner().clone();
    let token = kiosk.session_token().expect("unlocked");
    // `lock` is a synchronous command: it runs on this thread, outside any Tokio runtime.
    assert!(tokio::runtime::Handle::try_current().is_err());
    let locked = invoke(&w, "lock", json!({})).expect("view");
    assert_eq!(locked["screen"], "locked");
    assert_eq!(locked["notice"]["kind"], "locked");
    let record = kiosk.record().expect("enrolled").clone();
    let refused = rt.block_on(async {
        for _ in 0..100 {
            // The server is told in the background: wait until it refuses the old token.
            match sc_core::client::client_for(&record).expect("client").appointments(&token).await {
                Err(e) => return Some(e),
                Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
        None
    });
    assert!(matches!(refused, Some(sc_core::Error::Refused)), "the server ended the session: {refused:?}");
    // A core error reaches the page in the core's words.
    assert_eq!(invoke(&w, "appointments", json!({})), Err(wording(sc_core::Error::Locked)));
    let _ = keystore.delete(&data.profile_id());
    drop(rt);
}

fn wording(e: sc_core::Error) -> Value {
    serde_json::to_value(e.for_nurse()).expect("json")
}

#[test]
fn core_errors_reach_the_page_in_the_cores_words() {
    let dir = tempfile::tempdir().expect("dir");
    let (_app, w) = app_with(Kiosk::open(dir.path(), Keystore::secret_service).expect("kiosk"));
    let not_enrolled = wording(sc_core::Error::NotEnrolled);
    assert_eq!(
        not_enrolled,
        json!({ "kind": "error", "message": "This laptop is not set up yet. Ask IT to enrol it." })
    );
    assert_eq!(invoke(&w, "appointments", json!({})), Err(not_enrolled.clone()));
    assert_eq!(invoke(&w, "join", json!({ "roomCode": "abcd-efgh" })), Err(not_enrolled));
}

/// The names in a capability's `permissions` list.
fn capability_permissions(path: &std::path::Path) -> Vec<String> {
    let json: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("capability file")).expect("json");
    json["permissions"]
        .as_array()
        .expect("a permissions list")
        .iter()
        .map(|p| p.as_str().expect("a permission identifier").to_owned())
        .collect()
}

#[test]
fn every_page_command_has_exactly_one_allow_permission_and_nothing_else_is_allowed() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut expected: Vec<String> =
        sc_kiosk::COMMANDS.iter().map(|c| format!("allow-{}", c.replace('_', "-"))).collect();
    expected.sort();
    let mut granted = capability_permissions(&root.join("capabilities/kiosk.json"));
    granted.sort();
    assert_eq!(granted, expected, "capabilities/kiosk.json grants exactly the handler's commands, once each");

    // The build script writes one permission file per command; a stale one would name a command
    // the handler no longer has.
    let mut generated: Vec<String> = std::fs::read_dir(root.join("permissions/autogenerated"))
        .expect("permissions")
        .map(|e| e.expect("entry").file_name().to_string_lossy().trim_end_matches(".toml").to_owned())
        .collect();
    generated.sort();
    let mut commands: Vec<String> = sc_kiosk::COMMANDS.iter().map(|c| (*c).to_owned()).collect();
    commands.sort();
    assert_eq!(generated, commands, "permissions/autogenerated matches the command list");
    let mut unique = commands.clone();
    unique.dedup();
    assert_eq!(unique, commands, "no command is listed twice");

    // And each is really registered: the mock app answers it rather than "not found".
    let dir = tempfile::tempdir().expect("dir");
    let (_app, w) = app_with(Kiosk::open(dir.path(), Keystore::secret_service).expect("kiosk"));
    for command in sc_kiosk::COMMANDS {
        if let Err(Value::String(m)) = invoke(&w, command, json!({})) {
            assert!(!m.contains("not found") && !m.contains("not allowed"), "{command}: {m}");
        }
    }
}
