//! SIGINT and SIGTERM: long-running commands finish what they are writing, then stop.

use patchtrail_collect::StopSignal;
use tokio::task::JoinHandle;

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Sets `stop` on the first signal, and exits at once (130) on a second; abort the returned
/// task when the work is done.
pub fn stop_on_signal(stop: StopSignal) -> JoinHandle<()> {
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::warn!(
            "stop requested: finishing the object being written, then stopping without committing (press Ctrl-C again to quit at once)"
        );
        stop.stop();
        shutdown_signal().await;
        eprintln!("error: stopped at once by a second signal; nothing of this run was committed");
        std::process::exit(i32::from(crate::failure::EXIT_STOPPED));
    })
}
