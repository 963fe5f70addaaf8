//! Descriptors: small integers naming open sockets, allocated like the kernel does.
//!
//! POSIX requires `socket()`/`accept()`/`open()` to return the *lowest* descriptor not
//! currently open. `FdTable` does the same (starting at 3, as 0–2 are conventionally
//! stdin/stdout/stderr), which is why `select`'s 1024-bit sets are enough for a process with few
//! sockets, and why a process with thousands of sockets outgrows them.
//!
//! These are *not* operating-system descriptors: they index the table of one [`crate::Net`].

use std::collections::BTreeSet;

/// A descriptor in a [`crate::Net`]'s table (not an OS file descriptor). `i32` like C's `int`:
/// `poll` ignores negative entries, as `poll(2)` does.
pub type Fd = i32;

/// The first descriptor handed out (0, 1 and 2 are stdin, stdout and stderr by convention).
pub const FIRST_FD: Fd = 3;

/// A table of open descriptors with lowest-free allocation.
#[derive(Debug)]
pub(crate) struct FdTable<T> {
    slots: Vec<Option<T>>,
    /// Closed numbers below `slots.len()`, so the lowest is found in O(log n).
    free: BTreeSet<Fd>,
    open: usize,
}

impl<T> Default for FdTable<T> {
    fn default() -> Self {
        FdTable {
            slots: Vec::new(),
            free: BTreeSet::new(),
            open: 0,
        }
    }
}

impl<T> FdTable<T> {
    /// Stores `value` under the lowest free descriptor.
    pub fn insert(&mut self, value: T) -> Fd {
        self.open += 1;
        if let Some(fd) = self.free.pop_first() {
            self.slots[fd as usize] = Some(value);
            return fd;
        }
        while self.slots.len() < FIRST_FD as usize {
            self.slots.push(None);
        }
        self.slots.push(Some(value));
        (self.slots.len() - 1) as Fd
    }

    /// Closes `fd`, returning what it held.
    pub fn remove(&mut self, fd: Fd) -> Option<T> {
        let v = self.slots.get_mut(usize::try_from(fd).ok()?)?.take()?;
        self.open -= 1;
        self.free.insert(fd);
        Some(v)
    }

    pub fn get(&self, fd: Fd) -> Option<&T> {
        self.slots.get(usize::try_from(fd).ok()?)?.as_ref()
    }

    pub fn get_mut(&mut self, fd: Fd) -> Option<&mut T> {
        self.slots.get_mut(usize::try_from(fd).ok()?)?.as_mut()
    }

    /// Number of open descriptors.
    pub fn len(&self) -> usize {
        self.open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_free_descriptor_is_reused_first() {
        let mut t = FdTable::default();
        let a = t.insert('a');
        let b = t.insert('b');
        let c = t.insert('c');
        assert_eq!((a, b, c), (3, 4, 5));
        t.remove(b);
        t.remove(a);
        assert_eq!(t.insert('d'), 3);
        assert_eq!(t.insert('e'), 4);
        assert_eq!(t.insert('f'), 6);
        assert_eq!(t.len(), 4);
        assert!(t.get(-1).is_none());
    }
}
