//! Lock helpers.

use std::sync::{Mutex, MutexGuard, PoisonError};

// A panic inside a collector is caught and reported as that target's failure (schedule.rs);
// the state its lock guarded is at worst one cycle's partial update, which the next cycle
// overwrites. So take the lock even if poisoned rather than stop collecting.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
