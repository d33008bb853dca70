//! Per-source rate limits on the sign-in routes: governor's keyed GCRA per client address (an
//! IPv6 client by its /64, which one household or NAT holds), answered 429 with the wait.

use crate::config::SignInLimits;
use crate::Error;
use axum::extract::{ConnectInfo, Request};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;

/// Sources remembered before the idle ones are forgotten (each is a few dozen bytes).
const FORGET_ABOVE: usize = 10_000;

/// See the module docs.
#[derive(Debug)]
pub struct SignInLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
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
        Self::new(limits.per_minute, limits.burst)
    }

    /// The laptops' activation limiter from `limits`.
    pub fn laptops(limits: &SignInLimits) -> Self {
        Self::new(limits.laptop_per_minute, limits.laptop_burst)
    }

    /// A limiter allowing `burst` attempts at once and `per_minute` a minute after.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        SignInLimiter {
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(burst)),
            clock: DefaultClock::default(),
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
}
