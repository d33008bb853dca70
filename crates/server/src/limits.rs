//! Per-source rate limits on the sign-in routes: governor's keyed GCRA per client address (an
//! IPv6 client by its /64, which one household or NAT holds), answered 429 with the wait, and
//! that answer held a while (a tarpit), so a flood slows itself instead of the server.

use crate::config::SignInLimits;
use crate::Error;
use axum::extract::{ConnectInfo, Request};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;

/// Sources remembered before the idle ones are forgotten (each is a few dozen bytes).
const FORGET_ABOVE: usize = 10_000;
/// Refusals held at once, per limiter (each a sleeping task and its connection); beyond this
/// they are answered at once, so holding cannot itself exhaust the server.
pub const MAX_HELD: usize = 1024;

/// See the module docs.
#[derive(Debug)]
pub struct SignInLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
    hold: std::time::Duration,
    held: tokio::sync::Semaphore,
}

/// The key a client is limited under.
fn source(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl SignInLimiter {
    /// The web pages' limiter from `limits`.
    pub fn web(limits: &SignInLimits) -> Self {
        Self::new(limits.per_minute, limits.burst).holding(limits.hold_refused_ms, MAX_HELD)
    }

    /// The laptops' activation limiter from `limits`.
    pub fn laptops(limits: &SignInLimits) -> Self {
        Self::new(limits.laptop_per_minute, limits.laptop_burst).holding(limits.hold_refused_ms, MAX_HELD)
    }

    /// A limiter allowing `burst` attempts at once and `per_minute` a minute after, answering
    /// refusals at once.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        SignInLimiter {
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(burst)),
            clock: DefaultClock::default(),
            hold: std::time::Duration::ZERO,
            held: tokio::sync::Semaphore::new(0),
        }
    }

    /// Refusals held `hold_ms` before they are answered, at most `slots` at once.
    pub fn holding(mut self, hold_ms: u64, slots: usize) -> Self {
        self.hold = std::time::Duration::from_millis(hold_ms);
        self.held = tokio::sync::Semaphore::new(slots.min(tokio::sync::Semaphore::MAX_PERMITS));
        self
    }

    /// Waits out the hold before a refusal is answered (at once when every slot is taken).
    pub async fn hold_refusal(&self) {
        if let Ok(_slot) = self.held.try_acquire() {
            tokio::time::sleep(self.hold).await;
        }
    }

    /// Admits one attempt from `ip`, or says how long it must wait.
    pub fn check(&self, ip: IpAddr) -> Result<(), Error> {
        if self.limiter.len() > FORGET_ABOVE {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&source(ip)).map_err(|wait| {
            let secs = wait.wait_time_from(self.clock.now()).as_secs_f64().ceil();
            Error::RateLimited((secs as u64).max(1))
        })
    }
}

impl SignInLimiter {
    /// Admits `req` by its peer address (`app` runs this before every sign-in route). A request
    /// without one (only `oneshot` in tests builds one) is limited under the unspecified address,
    /// so all such share one budget.
    pub fn check_request(&self, req: &Request) -> Result<(), Error> {
        let ip = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        self.check(ip).inspect_err(|_| tracing::info!(source = %source(ip), "sign-in rate limited"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_client_is_limited_by_its_64_and_a_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().expect("ip");
        assert_eq!(source(a), source(b));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().expect("ip");
        assert_eq!(source(mapped), "10.0.0.1".parse::<IpAddr>().expect("ip"));
    }

    #[test]
    fn a_source_past_its_burst_waits_and_others_do_not() {
        let l = SignInLimiter::new(6, 3);
        let (a, b) = ("10.0.0.1".parse().expect("ip"), "10.0.0.2".parse().expect("ip"));
        for _ in 0..3 {
            l.check(a).expect("within the burst");
        }
        match l.check(a) {
            Err(Error::RateLimited(secs)) => assert!((1..=10).contains(&secs), "one every 10 s: {secs}"),
            other => panic!("{other:?}"),
        }
        l.check(b).expect("another source has its own budget");
    }

    /// A refusal is held for the hold (a flood waits on itself), unless every slot is taken, when
    /// it is answered at once (holding must not exhaust the server either).
    #[tokio::test(start_paused = true)]
    async fn issue_13_a_refusal_is_held_and_the_holds_are_bounded() {
        let l = std::sync::Arc::new(SignInLimiter::new(6, 3).holding(1000, 1));
        let t0 = tokio::time::Instant::now();
        let first = tokio::spawn({
            let l = l.clone();
            async move { l.hold_refusal().await }
        });
        tokio::task::yield_now().await;
        // The one slot is taken: the next refusal goes at once.
        l.hold_refusal().await;
        assert_eq!(t0.elapsed(), std::time::Duration::ZERO);
        first.await.expect("held");
        assert!(t0.elapsed() >= std::time::Duration::from_millis(1000), "{:?}", t0.elapsed());
        // The slot is free again.
        let t1 = tokio::time::Instant::now();
        l.hold_refusal().await;
        assert_eq!(t1.elapsed(), std::time::Duration::from_millis(1000));
    }
}
