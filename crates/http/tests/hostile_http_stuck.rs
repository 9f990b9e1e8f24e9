//! A server that never answers must not run the process out of threads and sockets: each
//! request given up by the header wait keeps its helper thread until the server lets go, so at
//! most `MAX_STUCK` such helpers exist; past that, new requests are refused at once (with a
//! message saying why) until some end. Alone in its test binary because the count is global.

use keel_http::{within, Stalled, MAX_STUCK};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[test]
fn requests_stuck_on_silent_servers_are_capped() {
    let (release, released) = mpsc::channel::<()>();
    let released = std::sync::Arc::new(std::sync::Mutex::new(released));
    // Each of these stands for a request a silent server never answers.
    for _ in 0..MAX_STUCK {
        let r = released.clone();
        let got = within(Duration::from_millis(20), move || {
            let _ = r.lock().unwrap().recv();
        });
        assert_eq!(got, Err(Stalled::Headers(Duration::from_millis(20))));
    }
    let start = Instant::now();
    let refused = within(Duration::from_secs(5), || 1).unwrap_err();
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "refused at once"
    );
    assert_eq!(refused, Stalled::TooManyStuck(MAX_STUCK));
    assert!(
        refused.to_string().contains("stopped answering"),
        "{refused}"
    );
    // The servers let go: requests run again.
    for _ in 0..MAX_STUCK {
        release.send(()).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match within(Duration::from_secs(5), || 2) {
            Ok(v) => break assert_eq!(v, 2),
            Err(Stalled::TooManyStuck(_)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("still refused: {e}"),
        }
    }
}
