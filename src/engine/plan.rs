//! The claim planner: given the endpoints with due work, what one claim round takes of
//! each. Pure: the outbox reads the counts (`DueEndpoint`) and takes the picks, in one
//! consistent view; the rules are here, once, for both backends.
//!
//! The rules, in the order they apply:
//! - **Rate limits across processes.** A rate-limited endpoint that another process holds
//!   deliveries of is left to that process: its board spaces the requests, and two boards
//!   could not keep one pace.
//! - **Probes.** An endpoint whose circuit is open gets one delivery when its probe is due,
//!   and none while that probe is out. Once it succeeds the circuit is closed and the
//!   endpoint is served by shares again, at the cap the board ramps back up from one
//!   (`Board::probing`: doubling per success), which reaches this planner in `caps`.
//! - **FIFO.** A FIFO endpoint gets its head (its oldest pending delivery) and nothing
//!   while one of its deliveries is out: the rest wait behind the head, in publish order.
//! - **Shares, in two passes,** so backlogs that could fill the round cannot starve a newer
//!   endpoint: first every due endpoint gets up to its in-flight cap, counting what it has
//!   out; then what room is left tops endpoints up to `depth` times that (in flight plus
//!   queued on the board), oldest due first.
//!
//! `depth` is where the backends differ, by name: a process-private outbox (SQLite) queues
//! up to four caps per endpoint on its board so workers never wait for a round; a shared
//! one (PostgreSQL replicas) claims no more than one cap, because what a replica has
//! claimed counts for every replica and the cap must hold across them.

use std::collections::HashMap;

use crate::store::{DueEndpoint, Pick, Take};

/// How much one round may take: in all, and per endpoint.
#[derive(Debug, Clone)]
pub struct Shares {
    /// At most this many deliveries in the round.
    pub limit: usize,
    /// An endpoint's in-flight cap (`endpoint_concurrency`)…
    pub cap: usize,
    /// …or its own, where its limit adapted to the receiver.
    pub caps: HashMap<i64, usize>,
    /// How many caps an endpoint may have out in all (see the module comment).
    pub depth: usize,
}

impl Shares {
    /// The in-flight cap of `endpoint`.
    fn cap_of(&self, endpoint: i64) -> usize {
        self.caps.get(&endpoint).copied().unwrap_or(self.cap).max(1)
    }

    /// The most a round could give one endpoint: what the outbox need count.
    pub fn ready_limit(&self) -> usize {
        let widest = self.caps.values().copied().fold(self.cap, usize::max);
        widest.max(1) * self.depth.max(1)
    }
}

/// What to take of each due endpoint, in their order (oldest due first), at most one pick
/// per endpoint.
pub fn plan(shares: &Shares, due: &[DueEndpoint]) -> Vec<Pick> {
    let mut room = shares.limit;
    // (index into `due`, deliveries taken) for endpoints served by shares.
    let mut taken: Vec<(usize, usize)> = Vec::new();
    let mut picks: Vec<(usize, Pick)> = Vec::new();
    for (i, e) in due.iter().enumerate() {
        if room == 0 {
            break;
        }
        if e.rate_limited && e.out_elsewhere > 0 {
            continue;
        }
        let one = if e.probe_due {
            Some(Take::Next)
        } else if e.fifo {
            e.head_ready.then_some(Take::Head)
        } else {
            let n = shares
                .cap_of(e.id)
                .saturating_sub(e.out)
                .min(e.ready)
                .min(room);
            room -= n;
            taken.push((i, n));
            continue;
        };
        if let Some(take) = one.filter(|_| e.out == 0) {
            room -= 1;
            picks.push((
                i,
                Pick {
                    endpoint: e.id,
                    take,
                },
            ));
        }
    }
    // The second pass: top up, in the same order, to `depth` caps.
    for (i, n) in &mut taken {
        if room == 0 {
            break;
        }
        let e = &due[*i];
        let full = shares.cap_of(e.id) * shares.depth.max(1);
        let more = full.saturating_sub(e.out + *n).min(e.ready - *n).min(room);
        room -= more;
        *n += more;
    }
    picks.extend(taken.into_iter().filter(|(_, n)| *n > 0).map(|(i, n)| {
        let endpoint = due[i].id;
        (
            i,
            Pick {
                endpoint,
                take: Take::Due(n),
            },
        )
    }));
    picks.sort_by_key(|(i, _)| *i);
    picks.into_iter().map(|(_, p)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn due(id: i64, ready: usize) -> DueEndpoint {
        DueEndpoint {
            id,
            probe_due: false,
            fifo: false,
            rate_limited: false,
            ready,
            head_ready: false,
            out: 0,
            out_elsewhere: 0,
        }
    }

    fn shares(limit: usize, cap: usize, depth: usize) -> Shares {
        Shares {
            limit,
            cap,
            caps: HashMap::new(),
            depth,
        }
    }

    fn takes(picks: &[Pick]) -> Vec<(i64, Take)> {
        picks.iter().map(|p| (p.endpoint, p.take)).collect()
    }

    #[test]
    fn every_due_endpoint_gets_its_cap_before_any_is_topped_up() {
        // Three backlogs and room for 12: each gets its cap of 2 first, then the oldest due
        // are topped up to 4 caps while room lasts.
        let picks = plan(&shares(12, 2, 4), &[due(1, 100), due(2, 100), due(3, 100)]);
        assert_eq!(
            takes(&picks),
            vec![(1, Take::Due(8)), (2, Take::Due(2)), (3, Take::Due(2))]
        );
    }

    #[test]
    fn what_an_endpoint_has_out_counts_against_its_share() {
        let mut busy = due(1, 100);
        busy.out = 7;
        let picks = plan(&shares(100, 2, 4), &[busy, due(2, 1)]);
        assert_eq!(takes(&picks), vec![(1, Take::Due(1)), (2, Take::Due(1))]);
    }

    #[test]
    fn a_shared_outbox_claims_one_cap_per_endpoint() {
        let mut other = due(1, 100);
        other.out = 1;
        other.out_elsewhere = 1;
        let picks = plan(&shares(100, 3, 1), &[other, due(2, 100)]);
        assert_eq!(takes(&picks), vec![(1, Take::Due(2)), (2, Take::Due(3))]);
    }

    #[test]
    fn an_adapted_cap_sets_the_endpoints_own_share() {
        let mut s = shares(100, 2, 4);
        s.caps.insert(1, 5);
        assert_eq!(s.ready_limit(), 20);
        let picks = plan(&s, &[due(1, 100), due(2, 100)]);
        assert_eq!(takes(&picks), vec![(1, Take::Due(20)), (2, Take::Due(8))]);
    }

    #[test]
    fn the_round_stops_at_its_limit_in_due_order() {
        let picks = plan(&shares(3, 2, 4), &[due(1, 100), due(2, 100), due(3, 100)]);
        assert_eq!(takes(&picks), vec![(1, Take::Due(2)), (2, Take::Due(1))]);
    }

    #[test]
    fn no_more_is_taken_than_is_ready() {
        let picks = plan(&shares(100, 10, 4), &[due(1, 3), due(2, 0)]);
        assert_eq!(takes(&picks), vec![(1, Take::Due(3))]);
    }

    #[test]
    fn a_probe_is_one_delivery_and_none_while_it_is_out() {
        let mut probe = due(1, 0);
        probe.probe_due = true;
        assert_eq!(
            takes(&plan(&shares(10, 4, 4), &[probe.clone()])),
            vec![(1, Take::Next)]
        );
        probe.out = 1;
        assert!(plan(&shares(10, 4, 4), &[probe]).is_empty());
    }

    #[test]
    fn a_fifo_endpoint_gets_its_head_only_when_nothing_is_out() {
        let mut fifo = due(1, 5);
        fifo.fifo = true;
        assert!(
            plan(&shares(10, 4, 4), &[fifo.clone()]).is_empty(),
            "head not ready"
        );
        fifo.head_ready = true;
        assert_eq!(
            takes(&plan(&shares(10, 4, 4), &[fifo.clone()])),
            vec![(1, Take::Head)]
        );
        fifo.out = 1;
        assert!(plan(&shares(10, 4, 4), &[fifo]).is_empty());
    }

    #[test]
    fn a_rate_limited_endpoint_is_left_to_the_process_that_holds_it() {
        let mut limited = due(1, 10);
        limited.rate_limited = true;
        assert_eq!(
            takes(&plan(&shares(10, 2, 1), &[limited.clone()])),
            vec![(1, Take::Due(2))]
        );
        limited.out = 1;
        limited.out_elsewhere = 1;
        assert!(plan(&shares(10, 2, 1), &[limited]).is_empty());
    }
}
