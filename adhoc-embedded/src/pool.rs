//! The memory pool each query runs in: one limit, first come first served, but operators that can spill (sorts,
//! aggregates) may fill it only up to a headroom that stays free for those that cannot (hash-join tables, buffers).
//!
//! DataFusion's own pools sit at either end. The greedy pool lets an aggregate take everything, and an operator
//! that cannot spill and asks next fails the query. The fair pool caps every spilling operator at an equal share of
//! the limit, whether or not the others use theirs, so a plan with a dozen of them spills at a fraction of the
//! memory it has. Measured with `orders-bench lake` (10 million lake rows, 1 GiB, 2 threads, one run each, with
//! the view of that day): the item-sales question took 1.90× DuckDB's time with the fair pool, 2.12× with the
//! greedy one (the aggregates that came first took the memory, the ones after them spilled) and 1.22× with this one.
//!
//! A spilling operator cannot always spill when refused: an aggregate that has spilled merges its sorted files back
//! and fails the query if it is refused then (DataFusion 55 switches it to "report error" for that phase, though it
//! still counts as able to spill). So each spilling operator may always hold a small floor, even when the others
//! have filled the spilling share: a quarter of the headroom, split among the spilling operators registered. They
//! can thus take at most that quarter from the headroom, and a merging aggregate (a few batches of groups) is not
//! refused because another partition's aggregate holds the rest. Seen before the floor, at 1 GiB: "cannot have
//! 754656 more bytes (2579820 held, 805593451 of the query's 1073741824 in use ...)". The floor is per operator
//! (DataFusion's memory consumer), over all its reservations: a sort's merge opens one per merged stream.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use datafusion::error::{DataFusionError, Result};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation};

#[derive(Debug)]
pub struct HeadroomPool {
    limit: usize,
    /// What spilling operators leave free.
    headroom: usize,
    used: AtomicUsize,
    /// Spilling operators registered now: they share the floors' quarter of the headroom.
    spilling: AtomicUsize,
    /// Bytes each spilling operator holds, over all its reservations, by consumer id.
    held: Mutex<HashMap<usize, usize>>,
}

impl HeadroomPool {
    /// A pool of `limit` bytes whose spilling operators leave a quarter of it free.
    pub fn new(limit: usize) -> HeadroomPool {
        HeadroomPool::with_headroom(limit, limit / 4)
    }

    pub fn with_headroom(limit: usize, headroom: usize) -> HeadroomPool {
        HeadroomPool {
            limit,
            headroom: headroom.min(limit),
            used: AtomicUsize::new(0),
            spilling: AtomicUsize::new(0),
            held: Mutex::new(HashMap::new()),
        }
    }

    /// The per-operator byte counts (a panic elsewhere while holding the lock left them as they were).
    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<usize, usize>> {
        self.held.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Spills when refused, as far as this pool is concerned (see `try_grow` for repartitions).
    fn spills(consumer: &MemoryConsumer) -> bool {
        consumer.can_spill() && !consumer.name().starts_with("RepartitionExec")
    }

    /// What each spilling operator may hold whatever the others hold.
    fn floor(&self) -> usize {
        self.headroom / 4 / self.spilling.load(Ordering::Relaxed).max(1)
    }
}

impl fmt::Display for HeadroomPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "headroom pool ({} of {} bytes used, {} kept from spilling operators but a floor of {} each)",
            self.used.load(Ordering::Relaxed),
            self.limit,
            self.headroom,
            self.floor()
        )
    }
}

impl MemoryPool for HeadroomPool {
    fn name(&self) -> &str {
        "headroom"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        if HeadroomPool::spills(consumer) {
            self.spilling.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        if HeadroomPool::spills(consumer) {
            self.spilling.fetch_sub(1, Ordering::Relaxed);
            self.held().remove(&consumer.id());
        }
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        if HeadroomPool::spills(reservation.consumer()) {
            *self.held().entry(reservation.consumer().id()).or_default() += additional;
        }
        self.used.fetch_add(additional, Ordering::Relaxed);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        if HeadroomPool::spills(reservation.consumer())
            && let Some(held) = self.held().get_mut(&reservation.consumer().id())
        {
            *held = held.saturating_sub(shrink);
        }
        self.used.fetch_sub(shrink, Ordering::Relaxed);
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        // A repartition's buffers count as unable to spill: its spilling can stop a query for good in DataFusion
        // 55 (apache/datafusion#24883: every worker parked, no error; seen here once at 10 million rows), so it
        // spills only when the whole limit is in use.
        let consumer = reservation.consumer();
        let spills = HeadroomPool::spills(consumer);
        // A spilling operator's count is checked and moved under one lock, so its floor holds across its
        // reservations even when two of them ask at once.
        let mut held = spills.then(|| self.held());
        let operator_holds = held.as_ref().map_or(reservation.size(), |h| h.get(&consumer.id()).copied().unwrap_or(0));
        let within_floor = spills && operator_holds.saturating_add(additional) <= self.floor();
        let ceiling = if spills && !within_floor { self.limit - self.headroom } else { self.limit };
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(additional).filter(|&total| total <= ceiling)
            })
            .map(|_| {
                if let Some(held) = held.as_mut() {
                    *held.entry(consumer.id()).or_default() += additional;
                }
            })
            .map_err(|used| {
                DataFusionError::ResourcesExhausted(format!(
                    "{} cannot have {additional} more bytes ({operator_holds} held, {used} of the query's {} in use{})",
                    consumer.name(),
                    self.limit,
                    if spills { ", the rest kept for operators that cannot spill" } else { "" }
                ))
            })
    }

    fn reserved(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.limit)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::execution::memory_pool::MemoryConsumer;

    use super::*;

    fn reservation(pool: &Arc<dyn MemoryPool>, name: &str, can_spill: bool) -> MemoryReservation {
        MemoryConsumer::new(name).with_can_spill(can_spill).register(pool)
    }

    #[test]
    fn given_a_pool_then_spilling_operators_fill_it_only_up_to_the_headroom() {
        let pool: Arc<dyn MemoryPool> = Arc::new(HeadroomPool::with_headroom(1_000, 250));
        let aggregate = reservation(&pool, "aggregate", true);
        let sort = reservation(&pool, "sort", true);

        aggregate.try_grow(600).unwrap();
        // Not a share each: the second operator gets what the first left below the headroom, no more.
        assert!(sort.try_grow(151).is_err());
        sort.try_grow(150).unwrap();
        assert_eq!(pool.reserved(), 750);

        // Memory an operator gives back is there for the others.
        aggregate.shrink(500);
        sort.try_grow(500).unwrap();
        assert_eq!(pool.reserved(), 750);
    }

    #[test]
    fn given_one_aggregate_holding_the_spilling_share_then_another_that_is_merging_its_spills_still_gets_its_floor() {
        // The case seen at 1 GiB, scaled down: partition 0's aggregate holds what spilling operators may hold,
        // partition 1's has spilled and, merging its files back, asks for a little more (it cannot spill again).
        let pool: Arc<dyn MemoryPool> = Arc::new(HeadroomPool::with_headroom(1_024_000, 256_000));
        let big = reservation(&pool, "FinalHashAggregateStream[0]", true);
        let merging = reservation(&pool, "FinalHashAggregateStream[1]", true);
        big.try_grow(768_000).unwrap();
        assert_eq!(pool.reserved(), 768_000, "the spilling share is full");

        // Floor: a quarter of the headroom over the two spilling operators = 32,000 bytes each
        merging.try_grow(2_500).unwrap();
        merging.try_grow(29_500).unwrap();
        let refused = merging.try_grow(1).unwrap_err().to_string();
        assert!(refused.contains("FinalHashAggregateStream[1] cannot have 1 more bytes (32000 held"), "{refused}");
        assert!(big.try_grow(1).is_err(), "above its floor, the big one is still held to the spilling share");
    }

    #[test]
    fn given_many_spilling_operators_at_their_floors_then_three_quarters_of_the_headroom_stay_for_joins() {
        let pool: Arc<dyn MemoryPool> = Arc::new(HeadroomPool::with_headroom(1_000_000, 200_000));
        let big = reservation(&pool, "aggregate", true);
        big.try_grow(800_000).unwrap();
        let small: Vec<MemoryReservation> = (0..9).map(|i| reservation(&pool, &format!("sort[{i}]"), true)).collect();
        let floor = 200_000 / 4 / 10;
        for r in &small {
            r.try_grow(floor).unwrap();
            assert!(r.try_grow(1).is_err(), "no more than the floor past the spilling share");
        }
        let join = reservation(&pool, "HashJoinInput", false);

        join.try_grow(150_000 + floor).unwrap();

        assert_eq!(pool.reserved(), 1_000_000, "the join had the headroom less the small operators' floors");
        assert!(floor * 9 <= 200_000 / 4);
    }

    #[test]
    fn given_an_operator_with_several_reservations_then_its_floor_covers_all_of_them_together() {
        // A sort's merge opens a reservation per merged stream, all of one consumer (`new_empty`).
        let pool: Arc<dyn MemoryPool> = Arc::new(HeadroomPool::with_headroom(1_024_000, 256_000));
        let big = reservation(&pool, "GroupedHashAggregateStream[0]", true);
        let merge = reservation(&pool, "ExternalSorterMerge[1]", true);
        let streams: Vec<MemoryReservation> = (0..4).map(|_| merge.new_empty()).collect();
        big.try_grow(768_000).unwrap();

        // Floor: 256,000 / 4 / 2 operators = 32,000 bytes for the merge, over its five reservations
        merge.try_grow(12_000).unwrap();
        for s in &streams {
            s.try_grow(5_000).unwrap();
        }
        let refused = streams[0].try_grow(1).unwrap_err().to_string();

        assert!(refused.contains("ExternalSorterMerge[1] cannot have 1 more bytes (32000 held"), "{refused}");
        assert_eq!(pool.reserved(), 800_000);
        // What one reservation gives back, another of the same operator may take
        streams[3].shrink(5_000);
        streams[0].try_grow(5_000).unwrap();
        assert!(merge.try_grow(1).is_err());
        drop(streams);
        merge.try_grow(20_000).unwrap();
    }

    #[test]
    fn given_spilling_operators_leave_then_the_floor_is_shared_among_fewer() {
        let pool = Arc::new(HeadroomPool::with_headroom(1_000, 400));
        let dyn_pool: Arc<dyn MemoryPool> = pool.clone();
        let first = reservation(&dyn_pool, "aggregate", true);
        let second = reservation(&dyn_pool, "sort", true);
        let _join = reservation(&dyn_pool, "hash join", false);
        let _repartition = reservation(&dyn_pool, "RepartitionExec[0]", true);
        assert_eq!(pool.floor(), 50, "two spilling operators: joins and repartitions do not count");
        drop(first);
        assert_eq!(pool.floor(), 100);
        drop(second);
        assert_eq!(pool.floor(), 100, "with none registered, one operator's floor");
    }

    #[test]
    fn given_spilling_operators_at_their_ceiling_then_an_operator_that_cannot_spill_still_gets_the_headroom() {
        let pool: Arc<dyn MemoryPool> = Arc::new(HeadroomPool::new(1_000));
        let aggregate = reservation(&pool, "aggregate", true);
        let join = reservation(&pool, "hash join", false);
        aggregate.try_grow(750).unwrap();

        join.try_grow(250).unwrap();
        let refused = join.try_grow(1).unwrap_err().to_string();

        assert!(refused.contains("hash join cannot have 1 more bytes"), "{refused}");
        assert!(refused.contains("1000 of the query's 1000 in use"), "{refused}");
        assert_eq!(pool.reserved(), 1_000, "a refused request takes nothing");
    }

    #[test]
    fn given_spilling_operators_at_their_ceiling_then_a_repartition_still_buffers_up_to_the_limit() {
        let pool: Arc<dyn MemoryPool> = Arc::new(HeadroomPool::new(1_000));
        let aggregate = reservation(&pool, "aggregate", true);
        let repartition = reservation(&pool, "RepartitionExec[1]", true);
        aggregate.try_grow(750).unwrap();

        repartition.try_grow(250).unwrap();

        assert!(repartition.try_grow(1).is_err(), "past the limit it spills, like any operator that can");
    }

    #[test]
    fn given_reservations_dropped_then_the_pool_is_empty_again() {
        let pool: Arc<dyn MemoryPool> = Arc::new(HeadroomPool::new(1_000));
        {
            let join = reservation(&pool, "hash join", false);
            join.grow(2_000); // infallible growth is counted even past the limit
            assert_eq!(pool.reserved(), 2_000);
            let aggregate = reservation(&pool, "aggregate", true);
            assert!(aggregate.try_grow(1).is_err());
        }
        assert_eq!(pool.reserved(), 0);
        assert!(matches!(pool.memory_limit(), MemoryLimit::Finite(1_000)));
    }
}
