//! The two-phase drain, as a value services watch.
//!
//! `Serving` → (shutdown asked) `Draining`: no new connections, idle ones and ones still
//! sending headers close at once, in-flight requests get the grace period → `Forced`:
//! streams still running end with an error event and `[DONE]` (each service decides how,
//! by watching [`Drain::forced`]) → `Closed`: whatever is left is dropped.

use std::sync::Arc;

use tokio::sync::watch;

/// Where a server's shutdown has got to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Accepting and serving.
    Serving,
    /// No new connections; in-flight requests are finishing.
    Draining,
    /// The grace period is over: streams end now with an error event.
    Forced,
    /// Remaining connections are dropped, cancelling their handlers.
    Closed,
}

/// A server's drain state. Clone it into the service; [`serve`](crate::serve) moves it
/// through the phases.
#[derive(Debug, Clone)]
pub struct Drain {
    tx: Arc<watch::Sender<Phase>>,
}

impl Default for Drain {
    fn default() -> Self {
        Drain::new()
    }
}

impl Drain {
    /// A drain in `Serving`.
    pub fn new() -> Drain {
        Drain {
            tx: Arc::new(watch::Sender::new(Phase::Serving)),
        }
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        *self.tx.borrow()
    }

    /// Moves to `phase` (never backwards).
    pub fn advance(&self, phase: Phase) {
        self.tx.send_if_modified(|current| {
            if phase > *current {
                *current = phase;
                true
            } else {
                false
            }
        });
    }

    /// Resolves once the phase is at least `phase`.
    pub async fn reached(&self, phase: Phase) {
        let mut rx = self.tx.subscribe();
        // The sender lives as long as `self`, so this cannot fail while we wait.
        let _ = rx.wait_for(|current| *current >= phase).await;
    }

    /// Resolves when in-flight streams must end (the grace period is over).
    pub async fn forced(&self) {
        self.reached(Phase::Forced).await;
    }

    /// A receiver of phase changes.
    pub fn subscribe(&self) -> watch::Receiver<Phase> {
        self.tx.subscribe()
    }
}
