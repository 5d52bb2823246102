//! A card in its vpcd slot, shared by the link that serves it to vpcd and the control channel
//! that drives it: the [`FaultyCard`] behind a mutex, and a counter of presence changes the
//! link watches. Whenever the control channel pulls the card, puts it back, resets it or loads
//! another card into it, it bumps the counter ([`Slot::changed`]); the link then drops its
//! connection to vpcd (pcscd sees the card leave) and connects again once the card is in.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use emulator::FaultyCard;
use tokio::sync::watch;

/// Locks `mutex`, also when a thread panicked while holding it: what the bridge guards (a
/// card whose store commits whole batches or nothing, counters, names) is whole either way.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A card in a vpcd slot.
pub struct Slot {
    card: Mutex<FaultyCard>,
    presence: watch::Sender<u64>,
    /// How often pcscd powered the card up (its ATR asked for after a power-on or a reset).
    power_ups: Mutex<u64>,
    powered: Condvar,
}

impl Slot {
    pub fn new(card: FaultyCard) -> Arc<Slot> {
        Arc::new(Slot {
            card: Mutex::new(card),
            presence: watch::Sender::new(0),
            power_ups: Mutex::new(0),
            powered: Condvar::new(),
        })
    }

    /// The card, for one command or one control verb at a time.
    pub fn lock(&self) -> MutexGuard<'_, FaultyCard> {
        lock(&self.card)
    }

    /// Tells the link the card's presence changed: it leaves vpcd now, and comes back if (and
    /// once) it is inserted.
    pub fn changed(&self) {
        self.presence.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// pcscd powered the card up (the link saw it ask for the ATR).
    pub fn powered_up(&self) {
        *lock(&self.power_ups) += 1;
        self.powered.notify_all();
    }

    /// How often pcscd powered the card up so far.
    pub fn power_ups(&self) -> u64 {
        *lock(&self.power_ups)
    }

    /// Waits (blocking, at most `limit`) until pcscd powers the card up after `seen` power-ups:
    /// whether it did.
    pub fn wait_powered_after(&self, seen: u64, limit: Duration) -> bool {
        let count = lock(&self.power_ups);
        let (count, _) = self
            .powered
            .wait_timeout_while(count, limit, |n| *n <= seen)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *count > seen
    }

    /// Where the link hears of presence changes.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.presence.subscribe()
    }
}
