//! The graceful stop, as every long-running part sees it: asked once (SIGTERM),
//! then each part finishes the step it is in and starts no other.

use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct Stopping {
    asked: watch::Sender<bool>,
}

impl Default for Stopping {
    fn default() -> Self {
        Stopping {
            asked: watch::channel(false).0,
        }
    }
}

impl Stopping {
    /// Asks every part to stop between steps.
    pub fn ask(&self) {
        self.asked.send_replace(true);
    }

    pub fn is_asked(&self) -> bool {
        *self.asked.borrow()
    }

    /// Resolves once a stop was asked for (at once if it already was).
    pub async fn asked(&self) {
        let mut asked = self.asked.subscribe();
        let _ = asked.wait_for(|stop| *stop).await;
    }
}
