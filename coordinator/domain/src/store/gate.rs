//! A pause a test puts in a call's way: the call waits at the gate until the
//! test opens it, and the test can wait until the call got there. Built on std
//! wakers: the domain has no async runtime.

use std::future::poll_fn;
use std::sync::{Mutex, MutexGuard};
use std::task::{Poll, Waker};

#[derive(Debug, Default)]
pub struct Gate {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    reached: bool,
    open: bool,
    waiting: Vec<Waker>,
}

impl Gate {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn change(&self, apply: impl FnOnce(&mut State)) {
        let mut state = self.state();
        apply(&mut state);
        for waker in state.waiting.drain(..) {
            waker.wake();
        }
    }

    async fn until(&self, done: impl Fn(&State) -> bool) {
        poll_fn(|cx| {
            let mut state = self.state();
            if done(&state) {
                Poll::Ready(())
            } else {
                state.waiting.push(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }

    /// Lets the held call go on.
    pub fn open(&self) {
        self.change(|s| s.open = true);
    }

    /// Resolves once the held call waits at the gate.
    pub async fn reached(&self) {
        self.until(|s| s.reached).await
    }

    /// Where the held call waits.
    pub(crate) async fn pass(&self) {
        self.change(|s| s.reached = true);
        self.until(|s| s.open).await
    }
}
