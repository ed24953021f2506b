//! In-process notifications between the parts of one process: a log grew, a build
//! changed status, someone asked to cancel. In `sparky up` they make following a log
//! and canceling immediate; across processes the same facts travel through the store
//! and report storage, and listeners fall back to re-reading those.

use tokio::sync::broadcast;

/// Something that happened to a build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HubEvent {
    LogGrew(i64),
    StatusChanged(i64),
    CancelRequested(i64),
}

impl HubEvent {
    pub fn build_id(self) -> i64 {
        match self {
            HubEvent::LogGrew(id) | HubEvent::StatusChanged(id) | HubEvent::CancelRequested(id) => id,
        }
    }
}

/// A broadcast channel of [`HubEvent`]s; cheap to clone.
#[derive(Clone, Debug)]
pub struct Hub {
    tx: broadcast::Sender<HubEvent>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub { tx: broadcast::channel(1024).0 }
    }
}

impl Hub {
    pub fn publish(&self, event: HubEvent) {
        // No listener is fine: nobody is watching.
        let _ = self.tx.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<HubEvent> {
        self.tx.subscribe()
    }
}
