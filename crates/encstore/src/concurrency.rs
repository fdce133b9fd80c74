//! Bounded concurrency over many objects: the one helper behind
//! [`EncryptedStorage::reencrypt_all`](crate::EncryptedStorage::reencrypt_all),
//! [`EncryptedStorage::verify_all`](crate::EncryptedStorage::verify_all),
//! [`EncryptedStorage::rewrap_deks_all`](crate::EncryptedStorage::rewrap_deks_all),
//! [`EncryptedStorage::census`](crate::EncryptedStorage::census) and
//! [`map_bounded`].
//!
//! A run starts at most `limit` tasks at once (tokio tasks, so the work of
//! different objects runs in parallel on a multi-thread runtime). It stops
//! starting new work when it is cancelled (a [`CancellationToken`]), when
//! its handler says so (the backend stopped answering) or when a lease it
//! holds is lost; the objects in flight then finish and are handed to the
//! handler, so counts stay true. Work in flight is abandoned only on an
//! abort token, or when a stop with a drain deadline runs out of time.

use std::future::Future;
use std::time::Duration;

use encstore_core::Lease;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Runs `work` on every item, at most `limit` at once, and returns the
/// results in the order of `items`.
///
/// `limit` is at least 1. A task that panics resumes the panic here.
pub async fn map_bounded<I, T, F, Fut>(items: I, limit: usize, work: F) -> Vec<T>
where
    I: IntoIterator,
    F: Fn(I::Item) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let items: Vec<I::Item> = items.into_iter().collect();
    let mut out: Vec<Option<T>> = std::iter::repeat_with(|| None).take(items.len()).collect();
    let control = Control::new(limit);
    run(
        items.into_iter().enumerate(),
        &control,
        |(i, item)| {
            let fut = work(item);
            async move { (i, fut.await) }
        },
        |step| {
            if let Step::Done((i, value)) = step {
                out[i] = Some(value);
            }
            Flow::Continue
        },
    )
    .await;
    out.into_iter().flatten().collect()
}

/// The builder methods that the options of every store-wide run share
/// (`new`, `concurrency`, `cancel`, `abort`, `on_event`), the hand-off of
/// an event to the sink (`emit`) and the [`Control`] a run takes from them. `$options` has the public fields
/// `concurrency`, `cancel`, `abort` and `on_event` (a sink of `$event`s)
/// and implements `Default`.
macro_rules! run_options {
    ($options:ident, $event:ty) => {
        impl $options {
            /// The defaults.
            pub fn new() -> $options {
                $options::default()
            }

            /// Sets [`concurrency`](Self::concurrency).
            pub fn concurrency(mut self, n: usize) -> $options {
                self.concurrency = n.max(1);
                self
            }

            /// Sets [`cancel`](Self::cancel).
            pub fn cancel(mut self, token: ::tokio_util::sync::CancellationToken) -> $options {
                self.cancel = Some(token);
                self
            }

            /// Sets [`abort`](Self::abort).
            pub fn abort(mut self, token: ::tokio_util::sync::CancellationToken) -> $options {
                self.abort = Some(token);
                self
            }

            /// Sets [`on_event`](Self::on_event).
            pub fn on_event(mut self, sink: impl Fn(&$event) + Send + Sync + 'static) -> $options {
                self.on_event = Some(::std::sync::Arc::new(sink));
                self
            }

            /// Hands `event` to [`on_event`](Self::on_event), if set.
            pub(crate) fn emit(&self, event: &$event) {
                if let Some(sink) = &self.on_event {
                    sink(event);
                }
            }

            /// How a run with these options is bounded and stopped, holding
            /// `lease` if it takes one.
            pub(crate) fn control<'a>(
                &'a self,
                lease: Option<&'a ::encstore_core::Lease>,
            ) -> $crate::concurrency::Control<'a> {
                $crate::concurrency::Control {
                    limit: self.concurrency,
                    cancel: self.cancel.as_ref(),
                    abort: self.abort.as_ref(),
                    lease,
                }
            }
        }
    };
}
pub(crate) use run_options;

/// Why a run stopped before its last item (internal form).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Halt {
    /// The cancellation token fired.
    Cancelled,
    /// The handler asked to stop (for example: the backend is unreachable).
    Handler,
    /// The lease was lost.
    LeaseLost,
}

/// What the handler says after each step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Go on.
    Continue,
    /// Start nothing new; the work in flight may take at most this long to
    /// finish before it is abandoned.
    Stop {
        /// How long the work in flight may still take.
        drain: Duration,
    },
}

/// One step of a run, handed to the handler.
pub(crate) enum Step<T> {
    /// An item's work finished.
    Done(T),
    /// The run stops starting work; `in_flight` items are still running.
    Stopping {
        /// Why.
        halt: Halt,
        /// Items still running.
        in_flight: usize,
    },
}

/// How a run is bounded and stopped.
pub(crate) struct Control<'a> {
    /// Items in flight at most.
    pub limit: usize,
    /// Stop starting new items; let the ones in flight finish.
    pub cancel: Option<&'a CancellationToken>,
    /// Abandon the items in flight too.
    pub abort: Option<&'a CancellationToken>,
    /// Stop when this lease is no longer held.
    pub lease: Option<&'a Lease>,
}

impl Control<'_> {
    pub(crate) fn new(limit: usize) -> Self {
        Control {
            limit: limit.max(1),
            cancel: None,
            abort: None,
            lease: None,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct End {
    /// Why it stopped early, if it did.
    pub halt: Option<Halt>,
    /// Items in flight that were abandoned (aborted, or past the drain
    /// deadline): each is either done or untouched, but was not handed to
    /// the handler.
    pub abandoned: usize,
}

/// Waits for `token`, or forever without one.
async fn fired(token: Option<&CancellationToken>) {
    match token {
        Some(t) => t.cancelled().await,
        None => std::future::pending().await,
    }
}

/// Runs `work` on each item with the bounds and stops of `control`, handing
/// every finished item (and the moment the run stops) to `handle`.
pub(crate) async fn run<I, T, F, Fut>(
    items: I,
    control: &Control<'_>,
    work: F,
    mut handle: impl FnMut(Step<T>) -> Flow,
) -> End
where
    I: IntoIterator,
    F: Fn(I::Item) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let mut set: JoinSet<T> = JoinSet::new();
    let mut iter = items.into_iter();
    let mut end = End::default();
    let limit = control.limit.max(1);
    let drain = tokio::time::sleep(Duration::from_secs(86_400 * 365));
    tokio::pin!(drain);
    let mut draining = false;
    loop {
        if end.halt.is_none() {
            let halt = if control.cancel.is_some_and(CancellationToken::is_cancelled) {
                Some(Halt::Cancelled)
            } else if control.lease.is_some_and(|l| !l.is_held()) {
                Some(Halt::LeaseLost)
            } else {
                None
            };
            if let Some(halt) = halt {
                end.halt = Some(halt);
                handle(Step::Stopping {
                    halt,
                    in_flight: set.len(),
                });
            }
        }
        if end.halt.is_none() {
            while set.len() < limit {
                let Some(item) = iter.next() else { break };
                set.spawn(work(item));
            }
        }
        if set.is_empty() {
            break;
        }
        tokio::select! {
            joined = set.join_next() => {
                let Some(joined) = joined else { break };
                let value = match joined {
                    Ok(v) => v,
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    // Aborted: only after an abort, which leaves the loop.
                    Err(_) => continue,
                };
                if let Flow::Stop { drain: within } = handle(Step::Done(value))
                    && end.halt.is_none()
                {
                    end.halt = Some(Halt::Handler);
                    handle(Step::Stopping { halt: Halt::Handler, in_flight: set.len() });
                    draining = true;
                    drain.as_mut().reset(tokio::time::Instant::now() + within);
                }
            }
            () = fired(control.cancel), if end.halt.is_none() => {
                end.halt = Some(Halt::Cancelled);
                handle(Step::Stopping { halt: Halt::Cancelled, in_flight: set.len() });
            }
            () = fired(control.abort) => {
                end.halt.get_or_insert(Halt::Cancelled);
                end.abandoned = set.len();
                set.abort_all();
                break;
            }
            () = &mut drain, if draining => {
                end.abandoned = set.len();
                set.abort_all();
                break;
            }
        }
    }
    end
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn map_bounded_keeps_order_and_bounds_concurrency() {
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let out = map_bounded(0..50u64, 4, |i| {
            let (running, peak) = (Arc::clone(&running), Arc::clone(&peak));
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50 - i)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                i * 2
            }
        })
        .await;
        assert_eq!(out, (0..50).map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(peak.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn cancel_lets_the_work_in_flight_finish() {
        let cancel = CancellationToken::new();
        let control = Control {
            cancel: Some(&cancel),
            ..Control::new(3)
        };
        let mut done = 0;
        let mut stopping = None;
        let c2 = cancel.clone();
        let end = run(
            0..100u32,
            &control,
            move |i| {
                let c = c2.clone();
                async move {
                    if i == 0 {
                        c.cancel();
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    i
                }
            },
            |step| {
                match step {
                    Step::Done(_) => done += 1,
                    Step::Stopping { halt, in_flight } => stopping = Some((halt, in_flight)),
                }
                Flow::Continue
            },
        )
        .await;
        assert_eq!(end.halt, Some(Halt::Cancelled));
        assert_eq!(end.abandoned, 0);
        // The three started before the cancel finish and are counted.
        assert_eq!(done, 3);
        assert_eq!(stopping, Some((Halt::Cancelled, 3)));
    }

    #[tokio::test]
    async fn abort_abandons_the_work_in_flight() {
        let abort = CancellationToken::new();
        let control = Control {
            abort: Some(&abort),
            ..Control::new(2)
        };
        let a2 = abort.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            a2.cancel();
        });
        let end = run(
            0..10u32,
            &control,
            |_| async { tokio::time::sleep(Duration::from_secs(60)).await },
            |_| Flow::Continue,
        )
        .await;
        assert_eq!(end.halt, Some(Halt::Cancelled));
        assert_eq!(end.abandoned, 2);
    }

    #[tokio::test]
    async fn a_handler_stop_drains_then_abandons() {
        let control = Control::new(3);
        let mut done = 0;
        let end = run(
            0..10u32,
            &control,
            |i| async move {
                if i > 0 {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
                i
            },
            |step| {
                if let Step::Done(_) = step {
                    done += 1;
                    return Flow::Stop {
                        drain: Duration::from_millis(50),
                    };
                }
                Flow::Continue
            },
        )
        .await;
        assert_eq!(end.halt, Some(Halt::Handler));
        assert_eq!(done, 1);
        assert_eq!(end.abandoned, 2);
    }
}
