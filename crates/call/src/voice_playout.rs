//! When each received voice packet is played: a jitter buffer. Packets are played in order at an
//! offset past their fastest arrival that covers most of the network's jitter; a packet that has
//! not come in time is concealed, one that never comes is rebuilt from the next (its repeat or
//! in-band FEC), and the delay moves toward its target (the jitter's, or the picture's for lip
//! sync) in the quiet between words. The kiosk played each packet the moment it arrived, so every
//! late one was a gap of silence that no figure counted, and the picture (held up to 800 ms for its
//! repairs, `crate::playout`) lagged the voice by all of its hold (issue #12).
//! Pure: packets, energies and times in, slots to render out; the engine's loop decodes them.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

/// Samples a millisecond (Opus's 48 kHz clock).
const PER_MS: f64 = 48.0;
/// How far ahead of its time a slot is decided and handed to the speaker: its device buffer needs
/// something queued, and the decision is then made before the audio is wanted, not after.
pub const LEAD: Duration = Duration::from_millis(20);
/// How long arrivals are remembered for the delay's target.
const WINDOW: Duration = Duration::from_secs(10);
/// A packet's lateness is counted from the fastest arrival of this last stretch (NetEq's
/// relative delay, over its two seconds): a backlog that comes at once after a stall is then no
/// jitter (each of its packets is ahead of the one before), and a queue that builds counts only
/// as fast as it builds.
const RECENT: Duration = Duration::from_secs(2);
/// The floor the voice is timed from is the fastest arrival of [`RECENT`] once packets have come
/// through this much of it, else of [`WINDOW`] (a backlog's arrivals are no new path).
const RECENT_SPAN: Duration = Duration::from_millis(1500);
/// The share of packets the target covers; the rest are concealed when their turn comes. NetEq
/// aims at 95-97 %.
const COVERED: f64 = 0.97;
/// The least delay past the fastest arrival: one 20 ms packet's worth of scheduling slack.
const MIN_TARGET_MS: f64 = 20.0;
/// The most delay the jitter alone may ask (a link's queue filling is not jitter to wait out).
const MAX_TARGET_MS: f64 = 500.0;
/// The most extra delay lip sync may ask (`crate::lipsync`).
pub const MAX_SYNC: Duration = Duration::from_millis(1000);
/// The most the voice is held in all for lip sync, past its fastest arrival (more only when the
/// jitter alone needs it): past it the conversation's delay costs more than the lips being out of
/// step. ITU-T G.114 counts one-way delays up to 400 ms acceptable; synced in full to the picture's
/// hold (500 ms there) the voice was held ~500 ms on the prison profile (Chromium there: 80-150
/// ms), ~600 ms from mouth to ear with the link's own. At this bound the picture lags the voice
/// ~220-280 ms there, where it lagged ~480 ms with the voice played as it came (issue #12).
const MAX_SYNCED_MS: f64 = 300.0;
/// How far off its target the delay may drift before it is moved (a 20 ms packet's worth, so a
/// single late packet does not start a correction either way).
const SLACK_MS: f64 = 25.0;
/// How long the delay may stay off target before it is moved even in speech.
const FORCE_AFTER: Duration = Duration::from_secs(2);
/// Past this much over its target the delay is cut at once, whole packets dropped unheard: a
/// burst after a queue or an outage would otherwise be played out at its full lateness.
const FLUSH_OVER_MS: f64 = 250.0;
/// How long a wait for the next packet lasts before the stream counts as gone (an outage, the
/// peer gone): it then starts afresh at its target when packets come again.
const GONE_AFTER: Duration = Duration::from_secs(1);
/// A packet this many sequence numbers from the stream's newest (20 s of 20 ms packets, a minute
/// of 60 ms ones) starts a new stream.
const NEW_STREAM_JUMP: u64 = 1000;
/// Packets held at most (five seconds of 20 ms ones); past it the oldest go.
const MAX_HELD: usize = 250;
/// A frame whose energy (mean square of full scale) is under this, or under twice the least of the
/// last [`QUIET_MEMORY`], is quiet: a pause, where a slot can go or be added unheard. −50 dBFS.
const QUIET_ENERGY: f64 = 1e-5;
/// How far over the quiet frames' energy speech must have been for them to count as pauses
/// (15 dB): a steady sound has no pauses.
const SPEECH_OVER_FLOOR: f64 = 30.0;
/// See [`QUIET_ENERGY`].
const QUIET_MEMORY: Duration = Duration::from_secs(3);
/// The length assumed for a packet that does not say (20 ms).
pub const DEFAULT_SAMPLES: u32 = 960;
/// The longest slot waited for a packet not yet come (20 ms). Waiting a whole packet's length,
/// each 60 ms packet of the consultant's voice on a link fit only for sound that came 10-30 ms
/// late was 60 ms concealed, and the delay then 60 ms over its target, cut again in the next
/// pause: on the audio-only profile a second in three lost a frame so (issue #12).
const WAIT_SAMPLES: u32 = 960;
/// The shortest and longest Opus packets (2.5 and 120 ms).
const SAMPLES_RANGE: (u32, u32) = (120, 5760);

/// One received voice packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoicePacket {
    /// RTP sequence number.
    pub seq: u16,
    /// RTP timestamp (48 kHz).
    pub timestamp: u32,
    /// RTP payload type (Opus's, or RED's).
    pub payload_type: u8,
    /// Samples per channel it holds (960 for 20 ms).
    pub samples: u32,
    /// Its own Opus frame (RED's newest block, parsed on arrival); empty for padding.
    pub payload: Vec<u8>,
    /// The earlier frame it repeats (RED's repeat of the previous packet), if it carries one.
    pub repeat: Option<Repeat>,
}

/// The earlier frame a RED packet repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repeat {
    /// How many samples before the packet's own frame it starts.
    pub back: u32,
    /// Its Opus frame.
    pub opus: Vec<u8>,
}

/// What to render next, for `samples` per channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    /// Play this packet. With `shorten`, the delay is over its target: if the packet decodes to
    /// quiet (or `shorten` is [`Shorten::Always`]), drop its audio and call [`VoicePlayout::skipped`].
    Play {
        /// The packet.
        packet: VoicePacket,
        /// Whether its audio may go unplayed.
        shorten: Shorten,
    },
    /// This slot's packet never came and a later one has: rebuild it from `next` (the very next
    /// packet, which repeats it or carries its FEC) or, without one, conceal it.
    Lost {
        /// The slot's length.
        samples: u32,
        /// The packet after it, if that has come.
        next: Option<VoicePacket>,
    },
    /// The next packet has not come yet: conceal, and the delay grows by this much.
    Wait {
        /// The slot's length.
        samples: u32,
    },
    /// The delay is under its target in a pause: add this much of the decoder's concealment (quiet
    /// after a quiet frame).
    Stretch {
        /// The slot's length.
        samples: u32,
    },
    /// Nothing has come for [`GONE_AFTER`] and more: silence.
    Gone {
        /// The slot's length.
        samples: u32,
    },
}

/// Whether a packet's audio may be dropped to bring the delay down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shorten {
    /// Play it.
    No,
    /// Drop it if it is quiet.
    IfQuiet,
    /// Drop it: the delay has been over its target for [`FORCE_AFTER`].
    Always,
}

impl Slot {
    /// Samples per channel the slot lasts (as decided; a dropped packet lasts none).
    pub fn samples(&self) -> u32 {
        match self {
            Slot::Play { packet, .. } => packet.samples,
            Slot::Lost { samples, .. }
            | Slot::Wait { samples }
            | Slot::Stretch { samples }
            | Slot::Gone { samples } => *samples,
        }
    }
}

/// Where the playout is in the stream.
#[derive(Debug, Clone, Copy)]
struct Playing {
    /// The next slot's sequence number (unwrapped).
    seq: u64,
    /// The next slot's media time, ms (unwrapped timestamp).
    media: f64,
    /// When the next slot starts at the speaker.
    out: Instant,
}

/// The voice's jitter buffer.
#[derive(Debug)]
pub struct VoicePlayout {
    /// Packets waiting, by unwrapped sequence number: (media ms, packet).
    held: BTreeMap<u64, (f64, VoicePacket)>,
    /// Sequence numbers that came as padding (an empty payload: the peer's probing of the link,
    /// which Chromium puts on its voice's stream when it has no video stream to carry it). No
    /// slot of their own and no loss: played as slots, each was a concealed frame and shifted
    /// the voice's time; skipped as lost, they shared a real loss's time.
    padding: BTreeSet<u64>,
    /// The last sequence number seen, unwrapped.
    last_seq: Option<(u16, u64)>,
    /// What a stream's first sequence number unwraps to.
    first_seq: u64,
    /// The last timestamp seen and its media ms.
    last_ts: Option<(u32, f64)>,
    /// Recent arrivals: (when, arrival ms after `epoch` minus media ms).
    offsets: VecDeque<(Instant, f64)>,
    /// Recent arrivals' lateness past the fastest of the [`RECENT`] arrivals before them: (when, ms).
    lates: VecDeque<(Instant, f64)>,
    /// Recent decoded energies, for what counts as quiet.
    energies: VecDeque<(Instant, f64)>,
    epoch: Instant,
    playing: Option<Playing>,
    /// Whether the stream is gone (nothing came for [`GONE_AFTER`]): silence until a packet
    /// comes and has waited its target.
    gone: bool,
    /// Since when the next packet has been waited for.
    waiting_since: Option<Instant>,
    /// Since when the delay has been off its target by more than [`SLACK_MS`].
    off_since: Option<Instant>,
    /// Whether the last packet played was quiet.
    last_quiet: bool,
    /// The last packet's length, for slots with none.
    last_samples: u32,
    /// The voice's extra delay to keep in step with the picture.
    sync: Duration,
    /// Samples dropped unheard at once past [`FLUSH_OVER_MS`].
    flushed: u64,
}

impl VoicePlayout {
    /// An empty buffer; `epoch` is any instant at or before the first arrival.
    pub fn new(epoch: Instant) -> Self {
        VoicePlayout {
            held: BTreeMap::new(),
            padding: BTreeSet::new(),
            last_seq: None,
            first_seq: 1 << 32,
            last_ts: None,
            offsets: VecDeque::new(),
            lates: VecDeque::new(),
            energies: VecDeque::new(),
            epoch,
            playing: None,
            gone: false,
            waiting_since: None,
            off_since: None,
            last_quiet: true,
            last_samples: DEFAULT_SAMPLES,
            sync: Duration::ZERO,
            flushed: 0,
        }
    }

    /// A packet arrived at `now`. One older than the slot now playing is dropped (its slot was
    /// concealed or rebuilt already).
    pub fn push(&mut self, now: Instant, packet: VoicePacket) {
        let seq = match self.last_seq {
            Some((prev, prev_u)) => prev_u.saturating_add_signed(i64::from(packet.seq.wrapping_sub(prev) as i16)),
            None => self.first_seq,
        };
        // Numbers far from the stream's are a new stream (the peer's sender started again): from
        // the old one's, every packet of it would be older than the slot playing, and dropped.
        let far = |a: u64, b: u64| a.abs_diff(b) > NEW_STREAM_JUMP;
        if self.last_seq.is_some_and(|(_, u)| far(seq, u))
            || self.playing.is_some_and(|p| seq + NEW_STREAM_JUMP < p.seq)
        {
            self.held.clear();
            self.padding.clear();
            // The new stream's numbers go on past the old one's, so none reads as already played.
            let past = self.last_seq.map_or(0, |(_, u)| u).max(self.playing.map_or(0, |p| p.seq));
            self.first_seq = past + 2 * NEW_STREAM_JUMP;
            (self.last_seq, self.last_ts) = (None, None);
            self.offsets.clear();
            self.lates.clear();
            self.gone = self.playing.is_some();
            return self.push(now, packet);
        }
        if packet.payload.is_empty() {
            // Padding: its number taken, nothing to play, and no arrival to learn the delay from
            // (its timestamp is not the voice's time).
            if self.playing.is_none_or(|p| seq >= p.seq) {
                self.padding.insert(seq);
                while self.padding.len() > MAX_HELD {
                    self.padding.pop_first();
                }
            }
            return;
        }
        let media = match self.last_ts {
            // The signed distance from the last timestamp: wraps and small steps back both come out
            // right.
            Some((prev, prev_ms)) => prev_ms + f64::from(packet.timestamp.wrapping_sub(prev) as i32) / PER_MS,
            None => 0.0,
        };
        // The packet before this one never came (not yet, at least): this one's repeat is its content.
        let after_gap = self.last_seq.is_some_and(|(_, u)| seq > u + 1) && !self.padding.contains(&(seq - 1));
        if self.last_seq.is_none_or(|(_, u)| seq > u) {
            self.last_seq = Some((packet.seq, seq));
            self.last_ts = Some((packet.timestamp, media));
        }
        let arrived = now.saturating_duration_since(self.epoch).as_secs_f64() * 1000.0;
        self.offsets.push_back((now, arrived - media));
        let recent = self.offsets.iter().rev().take_while(|(at, _)| now.saturating_duration_since(*at) <= RECENT);
        let fastest = recent.map(|(_, o)| *o).fold(f64::INFINITY, f64::min);
        let late = arrived - media - fastest;
        self.lates.push_back((now, late));
        if let (true, Some(back)) = (after_gap, packet.repeat.as_ref().map(|r| r.back)) {
            // A lost packet's content came with its repeat, that much later than its own time:
            // counted among the arrivals, the target covers the repairs as it covers the jitter
            // once losses are more than its uncovered share. A 60 ms packet's repeat comes 60 ms
            // after it was due; with the target at the jitter's 30-50 ms, each loss on the
            // audio-only profile (5 %) was waited for in concealment before its repeat came, and
            // the prisoner heard the consultant 2.4-2.7 % concealed, seconds at 16-22 % (issue #12).
            self.lates.push_back((now, late + f64::from(back) / PER_MS));
        }
        for q in [&mut self.offsets, &mut self.lates] {
            while q.front().is_some_and(|(at, _)| now.saturating_duration_since(*at) > WINDOW) {
                q.pop_front();
            }
        }
        if self.playing.is_some_and(|p| seq < p.seq) {
            return;
        }
        let packet = VoicePacket { samples: packet.samples.clamp(SAMPLES_RANGE.0, SAMPLES_RANGE.1), ..packet };
        self.held.insert(seq, (media, packet));
        while self.held.len() > MAX_HELD {
            self.held.pop_first();
        }
    }

    /// The voice's extra delay so it plays in step with the picture (at most [`MAX_SYNC`]).
    pub fn set_sync(&mut self, extra: Duration) {
        self.sync = extra.min(MAX_SYNC);
    }

    /// The extra delay for the picture now taken: what lip sync asked, within the voice's bound.
    pub fn sync(&self) -> Duration {
        Duration::from_secs_f64(self.sync_ms() / 1000.0)
    }

    /// The delay the voice aims at past its fastest arrival: the jitter's share and the sync's.
    pub fn target(&self) -> Duration {
        Duration::from_secs_f64((self.jitter_target() + self.sync_ms()) / 1000.0)
    }

    /// The delay of the slot to be decided next past the fastest arrival (none before playing).
    pub fn delay(&self) -> Option<Duration> {
        let p = self.playing?;
        let over = self.offset_at(p) - self.floor();
        Some(Duration::from_secs_f64(over.max(0.0) / 1000.0))
    }

    /// How long the slot to be decided next is held past the jitter's own need: the extra delay
    /// for the picture, and what the buffer has not yet taken up or cut.
    pub fn over_need(&self) -> Duration {
        let over = self.delay().unwrap_or_default().as_secs_f64() * 1000.0 - self.jitter_target();
        Duration::from_secs_f64(over.max(0.0) / 1000.0)
    }

    /// When the slot to be decided next starts at the speaker (`None` before playing).
    pub fn next_start(&self) -> Option<Instant> {
        self.playing.map(|p| p.out)
    }

    /// Samples dropped unheard to cut a burst's delay at once.
    pub fn flushed(&self) -> u64 {
        self.flushed
    }

    /// When the next slot is to be decided (`None`: nothing to play until a packet comes).
    pub fn next_due(&self) -> Option<Instant> {
        match self.playing {
            Some(p) => Some(p.out.checked_sub(LEAD).unwrap_or(p.out)),
            None => self.start_due(),
        }
    }

    /// When the first held packet has waited its target: a stream starts (or starts again after
    /// it was gone) there.
    fn start_due(&self) -> Option<Instant> {
        let (_, (media, _)) = self.held.first_key_value()?;
        let ms = media + self.floor() + self.jitter_target() + self.sync_ms();
        Some(self.epoch + Duration::from_secs_f64(ms.max(0.0) / 1000.0))
    }

    /// The slot to render next, if one is due at `now`.
    pub fn next(&mut self, now: Instant) -> Option<Slot> {
        let due = self.next_due()?;
        if due > now {
            return None;
        }
        let Some(mut p) = self.playing else {
            // Starting, from the first packet.
            let (&seq, &(media, _)) = self.held.first_key_value()?;
            self.playing = Some(Playing { seq, media, out: now + LEAD });
            return self.next(now);
        };
        if self.gone {
            match self.held.first_key_value().map(|(&s, &(m, _))| (s, m)) {
                Some((seq, media)) if self.start_due().is_some_and(|d| d <= now) => {
                    // Back: from the first packet held (a backlog's late ones are flushed below).
                    (p.seq, p.media, self.gone) = (seq, media, false);
                    (self.waiting_since, self.off_since) = (None, None);
                }
                _ => {
                    let samples = self.last_samples;
                    p.out = p.out.max(now) + samples_duration(samples);
                    self.playing = Some(p);
                    return Some(Slot::Gone { samples });
                }
            }
        }
        // A loop that fell behind (the process stalled) starts again from now: that gap was the
        // speaker's, nothing to catch up.
        if p.out + LEAD < now {
            p.out = now + LEAD;
        }
        let target = self.floor() + self.jitter_target() + self.sync_ms();
        let over = self.offset_at(p) - target;
        // Nothing is cut below the delay the newest packet came at: the path's delay may have
        // risen past what the target takes for jitter (lateness over MAX_TARGET_MS), and cut to
        // the target, each packet after was waited for again, concealed, and cut again (issue #12).
        let needed = self.newest_offset().map_or(f64::NEG_INFINITY, |o| o + MIN_TARGET_MS);
        if over > FLUSH_OVER_MS {
            self.flush(&mut p, target.max(needed));
        }
        let off = over.abs() > SLACK_MS;
        let since = if off { Some(*self.off_since.get_or_insert(now)) } else { None };
        if !off {
            self.off_since = None;
        }
        let forced = since.is_some_and(|s| now.saturating_duration_since(s) >= FORCE_AFTER);
        while self.padding.remove(&p.seq) {
            p.seq += 1;
        }
        self.padding = self.padding.split_off(&p.seq);
        let slot = match self.held.remove(&p.seq) {
            Some((media, packet)) => {
                // Under its target in a pause (the last packet was quiet): add a slot of quiet
                // before this one, which is held for the next decision.
                if off && over < 0.0 && (self.last_quiet || forced) {
                    self.held.insert(p.seq, (media, packet));
                    let samples = ((-over).min(f64::from(self.last_samples) / PER_MS) * PER_MS) as u32;
                    let samples = samples.clamp(SAMPLES_RANGE.0, DEFAULT_SAMPLES);
                    if forced {
                        self.off_since = Some(now);
                    }
                    p.out += samples_duration(samples);
                    self.playing = Some(p);
                    return Some(Slot::Stretch { samples });
                }
                let may_cut = off && over > 0.0 && self.offset_at(p) - needed > SLACK_MS;
                let shorten = match (may_cut, forced) {
                    (false, _) => Shorten::No,
                    (true, false) => Shorten::IfQuiet,
                    (true, true) => {
                        self.off_since = Some(now);
                        Shorten::Always
                    }
                };
                p.seq += 1;
                p.media = media + f64::from(packet.samples) / PER_MS;
                p.out += samples_duration(packet.samples);
                self.last_samples = packet.samples;
                self.waiting_since = None;
                Slot::Play { packet, shorten }
            }
            None => match self.held.range(p.seq..).next().map(|(&s, (m, _))| (s, *m)) {
                Some((later, media)) => {
                    // Lost: a later packet has come. The missing ones (padding is none) share the
                    // time up to it.
                    let missing = (p.seq..later).filter(|s| !self.padding.contains(s)).count().max(1) as f64;
                    let samples = (((media - p.media) / missing) * PER_MS).round() as u32;
                    let samples = if samples < SAMPLES_RANGE.0 || samples > SAMPLES_RANGE.1 {
                        self.last_samples
                    } else {
                        samples
                    };
                    let next = (p.seq + 1..later)
                        .all(|s| self.padding.contains(&s))
                        .then(|| self.held.get(&later).map(|(_, pk)| pk.clone()))
                        .flatten();
                    p.seq += 1;
                    p.media += f64::from(samples) / PER_MS;
                    p.out += samples_duration(samples);
                    self.waiting_since = None;
                    Slot::Lost { samples, next }
                }
                None => {
                    // In steps of at most 20 ms, whatever the packets' length: a packet a little
                    // late costs a step, not a whole 60 ms packet's worth (NetEq waits in 10 ms).
                    let samples = self.last_samples.min(WAIT_SAMPLES);
                    let since = *self.waiting_since.get_or_insert(now);
                    p.out += samples_duration(samples);
                    if now.saturating_duration_since(since) >= GONE_AFTER {
                        // Gone: when packets come again the stream starts afresh at its target.
                        self.gone = true;
                        self.playing = Some(p);
                        return Some(Slot::Gone { samples });
                    }
                    Slot::Wait { samples }
                }
            },
        };
        self.playing = Some(p);
        Some(slot)
    }

    /// The packet just played decoded to `energy` (mean square of full scale).
    pub fn heard(&mut self, now: Instant, energy: f64) {
        self.energies.push_back((now, energy));
        while self.energies.front().is_some_and(|(at, _)| now.saturating_duration_since(*at) > QUIET_MEMORY) {
            self.energies.pop_front();
        }
        self.last_quiet = self.is_quiet(energy);
    }

    /// Whether a frame of `energy` is quiet: under [`QUIET_ENERGY`], or near the least of the last
    /// few seconds (a room's noise floor) when louder frames (speech) stood well above that.
    pub fn is_quiet(&self, energy: f64) -> bool {
        let (least, most) = self.energies.iter().fold((f64::INFINITY, 0.0f64), |(l, m), (_, e)| (l.min(*e), m.max(*e)));
        energy < QUIET_ENERGY || (energy <= least * 2.0 && most >= least * SPEECH_OVER_FLOOR)
    }

    /// The packet's audio (`samples` of it) was dropped unheard, as [`Shorten`] allowed.
    pub fn skipped(&mut self, samples: u32) {
        if let Some(p) = self.playing.as_mut() {
            p.out = p.out.checked_sub(samples_duration(samples)).unwrap_or(p.out);
        }
    }

    /// Drops held packets unheard until the delay is back at its target.
    fn flush(&mut self, p: &mut Playing, target: f64) {
        while self.offset_at(*p) - target > SLACK_MS {
            let Some((&seq, &(media, ref packet))) = self.held.range(p.seq..).next() else { break };
            let samples = packet.samples;
            self.held.remove(&seq);
            self.flushed += u64::from(samples);
            p.seq = seq + 1;
            p.media = media + f64::from(samples) / PER_MS;
        }
    }

    /// The delay of the slot `p` is at: when it is decided minus its media time, past `epoch`.
    fn offset_at(&self, p: Playing) -> f64 {
        let decided = p.out.checked_sub(LEAD).unwrap_or(p.out);
        decided.saturating_duration_since(self.epoch).as_secs_f64() * 1000.0 - p.media
    }

    /// The delay the newest arrival came at (its arrival past `epoch` less its media ms, as
    /// [`VoicePlayout::offset_at`] counts a slot's): a slot held less than this would wait for
    /// packets on the path as it is now.
    fn newest_offset(&self) -> Option<f64> {
        self.offsets.back().map(|(_, o)| *o)
    }

    /// The fastest arrival of the last [`RECENT`] (of [`WINDOW`] while packets have not come
    /// through [`RECENT_SPAN`] of it): the network's floor and the two clocks' difference. A queue
    /// that stands raises it within seconds, so the voice is not waited for past it.
    fn floor(&self) -> f64 {
        let whole = || self.offsets.iter().map(|(_, o)| *o).fold(f64::INFINITY, f64::min).min(f64::MAX);
        let Some(&(newest, _)) = self.offsets.back() else { return whole() };
        let (mut oldest, mut least) = (newest, f64::INFINITY);
        for &(at, o) in self.offsets.iter().rev().take_while(|(at, _)| newest.saturating_duration_since(*at) <= RECENT)
        {
            oldest = at;
            least = least.min(o);
        }
        if newest.saturating_duration_since(oldest) >= RECENT_SPAN {
            least
        } else {
            whole()
        }
    }

    /// The lateness that [`COVERED`] of the window's packets stayed within, and the least margin.
    fn jitter_target(&self) -> f64 {
        // Past the most the jitter may ask, a packet is no jitter to wait for (a reordered
        // backlog, seconds late).
        let mut late: Vec<f64> = self.lates.iter().map(|(_, l)| *l).filter(|l| *l <= MAX_TARGET_MS).collect();
        late.sort_by(f64::total_cmp);
        // Truncation picks the element at or under the share.
        let at = (late.len().saturating_sub(1) as f64 * COVERED) as usize;
        let covered = late.get(at).copied().unwrap_or(0.0);
        (covered + MIN_TARGET_MS).min(MAX_TARGET_MS)
    }

    /// The extra delay for lip sync now, within [`MAX_SYNCED_MS`] of voice delay in all.
    fn sync_ms(&self) -> f64 {
        let room = (MAX_SYNCED_MS - self.jitter_target()).max(0.0);
        (self.sync.as_secs_f64() * 1000.0).min(room)
    }
}

fn samples_duration(samples: u32) -> Duration {
    Duration::from_micros(u64::from(samples) * 1000 / 48)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a run rendered: each slot with the ms it was decided at.
    struct Run {
        slots: Vec<(f64, Slot)>,
        /// The delay every 100 ms: (ms, delay).
        delays: Vec<(f64, Option<Duration>)>,
    }

    impl Run {
        /// The delay at `ms` (to the 100 ms).
        fn delay_at(&self, ms: f64) -> Duration {
            let (_, d) = self.delays.iter().find(|(at, _)| *at >= ms).expect("a delay then");
            d.expect("playing then")
        }

        /// The slots decided from `from_ms` to before `to_ms`.
        fn between(&self, from_ms: f64, to_ms: f64) -> impl Iterator<Item = &Slot> {
            self.slots.iter().filter(move |(at, _)| (from_ms..to_ms).contains(at)).map(|(_, s)| s)
        }

        fn count(&self, from_ms: f64, f: impl Fn(&Slot) -> bool) -> usize {
            self.slots.iter().filter(|(at, s)| *at >= from_ms && f(s)).count()
        }
        /// The samples rendered after `from_ms`, and those concealed (waits, losses, gone).
        fn concealed(&self, from_ms: f64) -> (u64, u64) {
            let mut all = 0;
            let mut concealed = 0;
            for (at, s) in &self.slots {
                if *at < from_ms {
                    continue;
                }
                all += u64::from(s.samples());
                if matches!(s, Slot::Wait { .. } | Slot::Lost { .. } | Slot::Gone { .. }) {
                    concealed += u64::from(s.samples());
                }
            }
            (all, concealed)
        }
    }

    /// Drives `n` 20 ms packets through a buffer: packet `i` (sequence `seq0 + i`, timestamp
    /// `ts0 + 960 i`) arrives at `arrive(i)` ms (`None`: lost) and decodes to `energy(i)`; a packet
    /// allowed to go is dropped when quiet. Polls every ms until `end_ms`.
    fn run(
        n: u32,
        start: (u16, u32),
        arrive: impl Fn(u32) -> Option<f64>,
        energy: impl Fn(u32) -> f64,
        sync: impl Fn(f64) -> Duration,
        end_ms: f64,
    ) -> Run {
        run_frames((960, false), n, start, arrive, energy, sync, end_ms)
    }

    /// [`run`] with packets of `frame` samples each, each repeating the one before it (as RED) when
    /// `repeats`.
    fn run_frames(
        (frame, repeats): (u32, bool),
        n: u32,
        (seq0, ts0): (u16, u32),
        arrive: impl Fn(u32) -> Option<f64>,
        energy: impl Fn(u32) -> f64,
        sync: impl Fn(f64) -> Duration,
        end_ms: f64,
    ) -> Run {
        let t0 = Instant::now();
        let mut p = VoicePlayout::new(t0);
        let mut arrivals: Vec<(f64, u32)> = (0..n).filter_map(|i| arrive(i).map(|a| (a, i))).collect();
        arrivals.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (mut next, mut ms, mut slots, mut delays) = (0, 0.0, Vec::new(), Vec::new());
        while ms <= end_ms {
            let now = t0 + Duration::from_secs_f64(ms / 1000.0);
            p.set_sync(sync(ms));
            while next < arrivals.len() && arrivals[next].0 <= ms {
                let i = arrivals[next].1;
                let packet = VoicePacket {
                    seq: seq0.wrapping_add(i as u16),
                    timestamp: ts0.wrapping_add(i * frame),
                    payload_type: 111,
                    samples: frame,
                    payload: i.to_be_bytes().to_vec(),
                    repeat: repeats.then(|| Repeat { back: frame, opus: Vec::new() }),
                };
                p.push(now, packet);
                next += 1;
            }
            while let Some(slot) = p.next(now) {
                if let Slot::Play { packet, shorten } = &slot {
                    let i = u32::from_be_bytes(packet.payload[..4].try_into().expect("four bytes"));
                    let e = energy(i);
                    let quiet = p.is_quiet(e);
                    p.heard(now, e);
                    if *shorten == Shorten::Always || (*shorten == Shorten::IfQuiet && quiet) {
                        p.skipped(packet.samples);
                    }
                }
                slots.push((ms, slot));
            }
            if ms % 100.0 == 0.0 {
                delays.push((ms, p.delay()));
            }
            ms += 1.0;
        }
        Run { slots, delays }
    }

    /// A pseudo-random sequence in 0..1 (a fixed LCG, so runs repeat).
    fn noise(i: u32) -> f64 {
        let x = i.wrapping_mul(1_103_515_245).wrapping_add(12_345).rotate_right(7);
        f64::from(x % 10_000) / 10_000.0
    }

    /// Speech of 1.2 s, then 0.4 s of pause, over and over.
    fn speech(i: u32) -> f64 {
        if i % 80 < 60 {
            0.01
        } else {
            1e-7
        }
    }

    #[test]
    fn issue_12_a_late_packet_is_concealed_in_its_slot_and_the_voice_never_stops() {
        // Jitter of 0-40 ms, and every two seconds one packet 120 ms late (holding those behind it,
        // order kept). Played as it arrived, each late packet was a gap of silence nobody counted.
        let arrive = |i: u32| {
            let base = 40.0 + f64::from(i) * 20.0 + noise(i) * 40.0;
            let spike = if i % 100 == 50 { 120.0 } else { 0.0 };
            Some(base + spike)
        };
        let r = run(1500, (100, 5), arrive, speech, |_| Duration::ZERO, 30_500.0);
        // Every ms of the call has audio: the slots' lengths add up to the time played.
        let (all, concealed) = r.concealed(10_000.0);
        // (Counted from 10 s to the run's end at 30.5 s, the last half second waiting past the end.)
        let played_ms = all as f64 / PER_MS;
        assert!((played_ms - 20_500.0).abs() < 100.0, "{played_ms} ms rendered in 20.5 s");
        // Most packets play in their slot; the 120 ms spikes (1 % of packets) are concealed.
        assert!(r.count(10_000.0, |s| matches!(s, Slot::Wait { .. })) > 0, "the spikes are waited for");
        let share = concealed as f64 / all as f64;
        assert!(share < 0.05, "concealed {:.1} %", share * 100.0);
        // The delay covers the jitter, not the rare spike.
        let delay = r.delay_at(29_000.0);
        assert!(delay >= Duration::from_millis(40) && delay <= Duration::from_millis(150), "{delay:?}");
    }

    #[test]
    fn a_lost_packet_is_rebuilt_from_the_next_one() {
        let arrive = |i: u32| (i % 25 != 10).then(|| 40.0 + f64::from(i) * 20.0);
        let r = run(200, (65_500, u32::MAX - 4000), arrive, speech, |_| Duration::ZERO, 4_500.0);
        let lost: Vec<&Slot> = r.slots.iter().map(|(_, s)| s).filter(|s| matches!(s, Slot::Lost { .. })).collect();
        assert_eq!(lost.len(), 8, "{lost:?}");
        for s in lost {
            let Slot::Lost { samples, next: Some(next) } = s else { panic!("{s:?}") };
            assert_eq!(*samples, 960);
            let i = u32::from_be_bytes(next.payload[..4].try_into().expect("four bytes"));
            assert_eq!(i % 25, 11, "rebuilt from the packet after it");
        }
        // Sequence numbers and timestamps wrapped on the way: every packet played in order.
        let played: Vec<u32> = r
            .slots
            .iter()
            .filter_map(|(_, s)| match s {
                Slot::Play { packet, .. } => Some(u32::from_be_bytes(packet.payload[..4].try_into().expect("four"))),
                _ => None,
            })
            .collect();
        assert_eq!(played.len(), 192);
        assert!(played.windows(2).all(|w| w[0] < w[1]));
        // Waited for nothing until the stream's end (at 4.02 s).
        let waits = r.slots.iter().filter(|(at, s)| *at < 4_000.0 && matches!(s, Slot::Wait { .. })).count();
        assert_eq!(waits, 0);
    }

    #[test]
    fn after_an_outage_the_voice_starts_again_at_its_delay_not_at_the_backlogs() {
        // 4 s of nothing from 10 s; then what was queued comes at once, and the stream goes on.
        let arrive = |i: u32| {
            let sent = f64::from(i) * 20.0;
            // The backlog comes in order, at the link's rate.
            Some(if (10_000.0..14_000.0).contains(&sent) {
                14_040.0 + sent / 10_000.0
            } else {
                sent + 40.0 + noise(i) * 20.0
            })
        };
        let r = run(1000, (1, 1), arrive, speech, |_| Duration::ZERO, 20_000.0);
        assert!(r.count(0.0, |s| matches!(s, Slot::Gone { .. })) > 100, "silence while gone");
        // Back within a few packets of the return, at the delay it had before.
        let delay = r.delay_at(15_000.0);
        assert!(delay <= Duration::from_millis(80), "{delay:?}");
        let (all, _) = r.concealed(0.0);
        assert!((all as f64 / PER_MS - 19_980.0).abs() < 300.0, "{} ms", all as f64 / PER_MS);
    }

    #[test]
    fn a_queue_that_drains_at_once_costs_its_delay_only_until_the_next_pauses() {
        // 400 ms of queue builds over 4 s and drains at once (order kept, as a queue does): the
        // voice waits it out, then the delay comes back down in the quiet between words.
        let at = |j: u32| {
            let sent = f64::from(j) * 20.0;
            let queue = if (5_000.0..9_000.0).contains(&sent) { (sent - 5_000.0) / 10.0 } else { 0.0 };
            sent + 40.0 + queue
        };
        let arrive = |i: u32| Some((0..=i).map(at).fold(0.0, f64::max));
        let r = run(1000, (7, 7), arrive, speech, |_| Duration::ZERO, 20_000.0);
        // The queue's growth (200 ms in each two seconds) is jitter to the buffer for the window's
        // ten seconds; what it held past that is played out in the pauses at once.
        let delay = r.delay_at(12_000.0);
        assert!(delay <= Duration::from_millis(250), "{delay:?} after the queue");
        let delay = r.delay_at(19_500.0);
        assert!(delay <= Duration::from_millis(60), "{delay:?} at the end");
    }

    /// Issue #12: on the step profile's fall (2 Mbit/s to 300 kbit/s) the consultant's voice came
    /// ~500 ms late for a second or two (the link's queue held ~75 ms; the page's pacer held its
    /// video 200-375 ms on average), past what the target takes for jitter (lateness over
    /// `MAX_TARGET_MS` is none). Cut back to the target each time it was 250 ms over, the buffer
    /// waited for every packet after, concealed, and cut again: 42 % and 52 % of two seconds
    /// concealed and 400 ms cut; the fall cost the kiosk 0.9-1.1 s of concealment in three runs,
    /// the Chromium pair 0.85-1.0 s. Only the rise itself is waited for.
    #[test]
    fn issue_12_a_path_delay_that_rises_past_the_jitter_target_is_waited_for_once() {
        const RISE: f64 = 700.0;
        // Sent from 5 s: the delay rises to 700 ms over half a second, stays a second, and drains
        // to a standing 80 ms over the next second (order kept, as a queue does).
        let at = |j: u32| {
            let sent = f64::from(j) * 20.0;
            let delay = match sent {
                s if s < 5_000.0 => 0.0,
                s if s < 5_500.0 => (s - 5_000.0) / 500.0 * RISE,
                s if s < 6_500.0 => RISE,
                s if s < 7_500.0 => RISE - (s - 6_500.0) / 1_000.0 * (RISE - 80.0),
                _ => 80.0,
            };
            sent + 40.0 + delay + noise(j) * 10.0
        };
        let arrive = |i: u32| Some((0..=i).map(at).fold(0.0, f64::max));
        let r = run(1000, (7, 7), arrive, speech, |_| Duration::ZERO, 20_000.0);
        let (_, concealed) = r.concealed(4_000.0);
        let concealed_ms = concealed as f64 / PER_MS;
        assert!(concealed_ms <= RISE + 60.0, "{concealed_ms} ms concealed for a rise of {RISE} ms");
        let waited_after = r.count(6_500.0, |s| matches!(s, Slot::Wait { .. } | Slot::Lost { .. }));
        assert_eq!(waited_after, 0, "nothing waited for once the buffer holds the path's delay");
    }

    #[test]
    fn the_voice_is_held_back_to_the_pictures_delay_in_the_pauses() {
        let arrive = |i: u32| Some(40.0 + f64::from(i) * 20.0 + noise(i) * 10.0);
        let sync = |ms: f64| if ms > 3_000.0 { Duration::from_millis(200) } else { Duration::ZERO };
        let r = run(1000, (1, 1), arrive, speech, sync, 20_000.0);
        let delay = r.delay_at(19_000.0);
        let target = Duration::from_millis(230);
        assert!(
            delay + Duration::from_millis(30) >= target && delay <= target + Duration::from_millis(30),
            "{delay:?}"
        );
        // Added in the pauses: no packet was dropped for it.
        assert_eq!(r.count(0.0, |s| matches!(s, Slot::Lost { .. } | Slot::Wait { .. })), 0);
        assert!(r.count(0.0, |s| matches!(s, Slot::Stretch { .. })) >= 10);
    }

    #[test]
    fn lip_sync_holds_the_voice_no_longer_than_a_conversation_bears() {
        let arrive = |i: u32| Some(40.0 + f64::from(i) * 20.0 + noise(i) * 10.0);
        let r = run(1000, (1, 1), arrive, speech, |_| Duration::from_millis(800), 20_000.0);
        let delay = r.delay_at(19_000.0);
        let most = Duration::from_secs_f64(MAX_SYNCED_MS / 1000.0);
        assert!(delay <= most + Duration::from_millis(30) && delay + Duration::from_millis(30) >= most, "{delay:?}");
    }

    #[test]
    fn without_pauses_the_delay_still_moves_every_two_seconds() {
        let arrive = |i: u32| Some(40.0 + f64::from(i) * 20.0);
        let sync = |ms: f64| if ms < 5_000.0 { Duration::from_millis(200) } else { Duration::ZERO };
        let r = run(1000, (1, 1), arrive, |_| 0.01, sync, 20_000.0);
        let forced = r.count(5_000.0, |s| matches!(s, Slot::Play { shorten: Shorten::Always, .. }));
        assert!(forced >= 3, "{forced}");
        let delay = r.delay_at(19_000.0);
        assert!(delay < Duration::from_millis(100), "{delay:?}");
    }

    #[test]
    fn a_stream_that_starts_again_with_new_numbers_plays_on() {
        let t0 = Instant::now();
        let mut p = VoicePlayout::new(t0);
        let packet = |seq: u16, timestamp: u32| VoicePacket {
            seq,
            timestamp,
            payload_type: 111,
            samples: 960,
            payload: vec![1],
            repeat: None,
        };
        let mut plays = 0;
        for i in 0..400u32 {
            let now = t0 + Duration::from_millis(u64::from(i) * 20);
            // Halfway, the sender starts again: sequence numbers and timestamps elsewhere.
            let (seq, ts) = if i < 200 { (100 + i, 5_000 + i * 960) } else { (40_000 + i, 900_000_000 + i * 960) };
            p.push(now, packet(seq as u16, ts));
            while let Some(slot) = p.next(now) {
                if i >= 300 {
                    plays += usize::from(matches!(slot, Slot::Play { .. }));
                }
            }
        }
        assert!(plays >= 95, "{plays} of the new stream's last 100 packets played");
    }

    #[test]
    fn nothing_is_rendered_before_the_first_packet_and_a_flood_is_bounded() {
        let t0 = Instant::now();
        let mut p = VoicePlayout::new(t0);
        assert_eq!(p.next(t0 + Duration::from_secs(5)), None);
        for i in 0..1000u16 {
            p.push(
                t0,
                VoicePacket {
                    seq: i.wrapping_mul(7919),
                    timestamp: u32::from(i) * 7,
                    payload_type: 111,
                    samples: 0,
                    // Half of them padding.
                    payload: if i % 2 == 0 { vec![1] } else { vec![] },
                    repeat: None,
                },
            );
        }
        assert!(p.held.len() <= MAX_HELD && p.padding.len() <= MAX_HELD);
        let mut n = 0;
        let mut now = t0;
        while n < 5000 {
            now += Duration::from_millis(5);
            while let Some(s) = p.next(now) {
                assert!(s.samples() >= SAMPLES_RANGE.0 && s.samples() <= SAMPLES_RANGE.1);
                n += 1;
            }
            n += 1;
        }
    }

    /// Issue #12: padding on the voice's stream (Chromium's probes of the link when it sends no
    /// video: empty packets with numbers of their own between the voice's) plays nothing and
    /// conceals nothing, and a voice packet lost beside it is concealed for its own 20 ms only.
    /// Played as slots, each padding packet was a concealed frame: with the page's video section
    /// made inactive while sound only (tried), Chromium's padding moved onto its voice, and on the
    /// audio-only profile the kiosk's hearing of the consultant went from ~4 % concealed to 12-14.
    #[test]
    fn issue_12_padding_on_the_voice_stream_is_no_slot_and_no_loss() {
        let t0 = Instant::now();
        let mut p = VoicePlayout::new(t0);
        // 20 ms voice packets arriving on time; after every third, three padding packets at once
        // (their timestamp the last voice packet's); voice packet 250 lost.
        let mut arrivals = Vec::new();
        let mut seq = 1000u16;
        for k in 0..500u32 {
            let at = 40.0 + f64::from(k) * 20.0;
            if k != 250 {
                arrivals.push((
                    at,
                    VoicePacket {
                        seq,
                        timestamp: k * 960,
                        payload_type: 63,
                        samples: 960,
                        payload: vec![1, 2, 3],
                        repeat: Some(Repeat { back: 960, opus: Vec::new() }),
                    },
                ));
            }
            seq = seq.wrapping_add(1);
            if k % 3 == 0 {
                for _ in 0..3 {
                    arrivals.push((
                        at,
                        VoicePacket {
                            seq,
                            timestamp: k * 960,
                            payload_type: 63,
                            samples: 960,
                            payload: vec![],
                            repeat: None,
                        },
                    ));
                    seq = seq.wrapping_add(1);
                }
            }
        }
        let (mut next, mut played, mut concealed, mut empty_played) = (0, 0u64, 0u64, 0);
        let mut ms = 0.0;
        while ms <= 10_500.0 {
            let now = t0 + Duration::from_secs_f64(ms / 1000.0);
            while next < arrivals.len() && arrivals[next].0 <= ms {
                p.push(now, arrivals[next].1.clone());
                next += 1;
            }
            while let Some(slot) = p.next(now) {
                match &slot {
                    Slot::Play { packet, .. } => {
                        empty_played += usize::from(packet.payload.is_empty());
                        played += u64::from(packet.samples);
                    }
                    other => concealed += u64::from(other.samples()),
                }
            }
            ms += 1.0;
        }
        assert_eq!(empty_played, 0, "no padding played as a slot");
        assert_eq!(played, 499 * 960, "every voice packet but the lost one played whole");
        // The lost packet's 20 ms, and the wait past the last packet at the end (under 0.5 s).
        let tail = 10_500.0 - (40.0 + 499.0 * 20.0);
        assert!(
            (concealed as f64 / PER_MS) <= 20.0 + tail + 40.0,
            "{} ms concealed (the loss's 20 and the end's {tail:.0})",
            concealed as f64 / PER_MS
        );
    }

    /// Issue #12: a 60 ms packet (the consultant's voice on a link fit only for sound) that comes
    /// a little late is waited for in 20 ms steps: one 30 ms late in fifty costs 20 ms of
    /// concealment, not the 60 of a whole packet's slot.
    #[test]
    fn issue_12_a_long_packet_a_little_late_is_waited_for_in_short_steps() {
        let late = |i: u32| i % 50 == 25;
        let arrive = |i: u32| Some(200.0 + f64::from(i) * 60.0 + noise(i) * 5.0 + if late(i) { 30.0 } else { 0.0 });
        let r = run_frames((2880, false), 500, (100, 5), arrive, speech, |_| Duration::ZERO, 30_500.0);
        // From 10 s to the last packet's time (it is waited for after, to the run's end).
        let (from, to) = (10_000.0, 29_900.0);
        let lates = (0..500u32).filter(|i| late(*i) && (from..to).contains(&(200.0 + f64::from(*i) * 60.0))).count();
        let concealing: Vec<&Slot> = r
            .between(from, to)
            .filter(|s| matches!(s, Slot::Wait { .. } | Slot::Lost { .. } | Slot::Gone { .. }))
            .collect();
        let concealed_ms: f64 = concealing.iter().map(|s| f64::from(s.samples()) / PER_MS).sum();
        assert!(lates >= 6, "{lates}");
        assert!(
            concealed_ms <= lates as f64 * 20.0,
            "{concealed_ms:.0} ms concealed for {lates} packets 30 ms late: {concealing:?}"
        );
    }

    /// Issue #12: on a lossy link the voice is held long enough for a lost packet's repeat (RED:
    /// the next packet carries it) to come before its slot, so the loss is rebuilt, not waited for
    /// in concealment first. 60 ms packets, one in twenty lost (the audio-only profile: 5 %): the
    /// repeat comes 60 ms after the lost packet was due, and the target held the jitter's 20-30 ms
    /// only, so each loss cost 60 ms concealed (3 % of the voice) and then a cut of the delay.
    #[test]
    fn issue_12_a_lost_packet_s_repeat_is_waited_for_not_concealed() {
        let lost = |i: u32| i % 20 == 7;
        let arrive = |i: u32| (!lost(i)).then(|| 200.0 + f64::from(i) * 60.0 + noise(i) * 10.0);
        let r = run_frames((2880, true), 500, (100, 5), arrive, speech, |_| Duration::ZERO, 30_500.0);
        let (from, to) = (10_000.0, 29_900.0);
        let losses = r.between(from, to).filter(|s| matches!(s, Slot::Lost { .. })).count();
        let rebuilt = r.between(from, to).filter(|s| matches!(s, Slot::Lost { next: Some(_), .. })).count();
        let waited_ms: f64 = r
            .between(from, to)
            .filter(|s| matches!(s, Slot::Wait { .. } | Slot::Gone { .. }))
            .map(|s| f64::from(s.samples()) / PER_MS)
            .sum();
        assert!(losses >= 15, "{losses}");
        assert_eq!(rebuilt, losses, "every loss rebuilt from its repeat");
        assert!(waited_ms <= 40.0, "{waited_ms:.0} ms concealed waiting for {losses} losses' repeats");
        // Held for the repeat: a packet's length and the jitter, not more.
        let delay = r.delay_at(25_000.0);
        assert!(delay >= Duration::from_millis(60) && delay <= Duration::from_millis(120), "{delay:?}");
    }

    /// Only a repeat that comes later counts: without repeats (plain Opus) a loss has nothing to
    /// wait for, and the target stays the jitter's.
    #[test]
    fn without_repeats_losses_do_not_raise_the_target() {
        let target = |repeat: Option<u32>| {
            let t0 = Instant::now();
            let mut p = VoicePlayout::new(t0);
            for i in (0..300u32).filter(|i| i % 20 != 7) {
                let at = t0 + Duration::from_secs_f64((200.0 + f64::from(i) * 60.0 + noise(i) * 10.0) / 1000.0);
                let packet = VoicePacket {
                    seq: i as u16,
                    timestamp: i * 2880,
                    payload_type: 63,
                    samples: 2880,
                    payload: vec![1],
                    repeat: repeat.map(|back| Repeat { back, opus: vec![1] }),
                };
                p.push(at, packet);
            }
            p.target()
        };
        assert!(target(None) <= Duration::from_millis(35), "{:?}", target(None));
        assert!(target(Some(2880)) >= Duration::from_millis(80), "{:?}", target(Some(2880)));
    }
}
