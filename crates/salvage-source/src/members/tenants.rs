//! Sets of chosen tenants, interned: a row's tenants are one `u32`. Most rows reach one
//! tenant, and `id < n` is the set holding just tenant `id`, with no table behind it; the few
//! sets of several tenants are numbered from `n` up, each stored once.

use std::sync::RwLock;

use rustc_hash::FxHashMap;

/// A set of tenants, by number (see [`TenantSets`]).
pub type SetId = u32;

/// The sets of one selection; shared by every reader of it.
#[derive(Debug)]
pub struct TenantSets {
    tenants: u32,
    several: RwLock<Interned>,
}

#[derive(Debug, Default)]
struct Interned {
    sets: Vec<Box<[u32]>>,
    ids: FxHashMap<Box<[u32]>, SetId>,
}

impl TenantSets {
    /// Sets over `tenants` chosen tenants.
    ///
    /// # Panics
    /// When there are 2^32 tenants or more (IDs come from a command line or a file).
    #[must_use]
    pub fn new(tenants: usize) -> Self {
        Self {
            tenants: u32::try_from(tenants).expect("fewer than 2^32 tenants"),
            several: RwLock::new(Interned::default()),
        }
    }

    /// The set holding just `tenant`.
    #[must_use]
    pub fn single(&self, tenant: usize) -> SetId {
        debug_assert!(tenant < self.tenants as usize);
        tenant as SetId
    }

    /// Whether `set` holds one tenant only.
    #[must_use]
    pub fn is_single(&self, set: SetId) -> bool {
        set < self.tenants
    }

    /// The union of two sets.
    #[must_use]
    pub fn union(&self, a: SetId, b: SetId) -> SetId {
        if a == b {
            return a;
        }
        let mut members = self.members(a);
        for tenant in self.members(b) {
            if let Err(position) = members.binary_search(&tenant) {
                members.insert(position, tenant);
            }
        }
        self.intern(members)
    }

    /// `a ∪ b` where either may be absent.
    #[must_use]
    pub fn join(&self, a: Option<SetId>, b: Option<SetId>) -> Option<SetId> {
        match (a, b) {
            (Some(a), Some(b)) => Some(self.union(a, b)),
            (one, None) | (None, one) => one,
        }
    }

    /// The set of exactly `members` (sorted, distinct, not empty).
    fn intern(&self, members: Vec<u32>) -> SetId {
        if let [one] = members.as_slice() {
            return *one;
        }
        let lock_error = "the tenant sets lock is poisoned";
        if let Some(&id) = self.several.read().expect(lock_error).ids.get(&*members) {
            return id;
        }
        let mut interned = self.several.write().expect(lock_error);
        if let Some(&id) = interned.ids.get(&*members) {
            return id;
        }
        let id = self.tenants + interned.sets.len() as u32;
        let members: Box<[u32]> = members.into();
        interned.sets.push(members.clone());
        interned.ids.insert(members, id);
        id
    }

    /// The tenants of `set`, in order.
    ///
    /// # Panics
    /// On a set id this value never gave out.
    #[must_use]
    pub fn members(&self, set: SetId) -> Vec<u32> {
        if set < self.tenants {
            return vec![set];
        }
        let interned = self
            .several
            .read()
            .expect("the tenant sets lock is poisoned");
        interned.sets[(set - self.tenants) as usize].to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::TenantSets;

    #[test]
    fn unions_are_interned_and_singletons_cost_nothing() {
        let sets = TenantSets::new(4);
        let (a, b, c) = (sets.single(0), sets.single(2), sets.single(3));
        assert!(sets.is_single(b));
        let ab = sets.union(a, b);
        assert!(!sets.is_single(ab));
        assert_eq!(sets.members(ab), [0, 2]);
        assert_eq!(sets.union(b, a), ab, "the same set, the same id");
        let abc = sets.union(ab, c);
        assert_eq!(sets.members(abc), [0, 2, 3]);
        assert_eq!(sets.union(abc, b), abc);
        assert_eq!(sets.union(a, a), a);
        assert_eq!(sets.join(None, Some(c)), Some(c));
        assert_eq!(sets.join(None, None), None);
    }
}
