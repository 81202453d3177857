//! Showing a running collection: a progress bar on a terminal, periodic log lines elsewhere.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use patchtrail_collect::Progress;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Renders `progress` until dropped.
pub struct ProgressView {
    task: JoinHandle<()>,
    bar: Option<ProgressBar>,
}

fn line(p: &Progress) -> String {
    // Several scopes (accounts, regions): how many are done, then the instance counters of all.
    let scopes = match Progress::get(&p.scopes_total) {
        0 => String::new(),
        total => format!("{}/{total} scopes, ", Progress::get(&p.scopes_done)),
    };
    format!(
        "{scopes}{} pages, {} patches, {} unmanaged, {} errors, {} req/s, {} throttled, {} retries",
        Progress::get(&p.pages),
        Progress::get(&p.patches),
        Progress::get(&p.unmanaged),
        Progress::get(&p.errors),
        Progress::get(&p.pace),
        Progress::get(&p.throttled),
        p.retries()
    )
}

impl ProgressView {
    /// A bar when stderr is a terminal and text logs are on; otherwise a log line every 10 s.
    pub fn start(progress: Arc<Progress>, text_logs: bool, quiet: bool) -> ProgressView {
        if quiet {
            return ProgressView {
                task: tokio::spawn(async {}),
                bar: None,
            };
        }
        if text_logs && std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} instances · {msg} · ETA {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            let view_bar = bar.clone();
            let task = tokio::spawn(async move {
                loop {
                    bar.set_length(Progress::get(&progress.instances_total));
                    bar.set_position(Progress::get(&progress.instances_done));
                    bar.set_message(line(&progress));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            });
            return ProgressView {
                task,
                bar: Some(view_bar),
            };
        }
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                tracing::info!(
                    done = Progress::get(&progress.instances_done),
                    total = Progress::get(&progress.instances_total),
                    "progress: {}",
                    line(&progress)
                );
            }
        });
        ProgressView { task, bar: None }
    }
}

impl Drop for ProgressView {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
