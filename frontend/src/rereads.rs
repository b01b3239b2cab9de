//! When a widget without a live stream re-reads its payment.
/// When a widget without a stream of its own (more widgets on the page than
/// `api::STREAMS_PER_PAGE`, or its stream down) re-reads its payment, asked about every 5 s:
/// every 5 s for the first minute after a refund of it set off (pending, unknown, in progress),
/// so the agent sees it settle; otherwise once a minute, each widget at a moment of its own, so
/// a page of many widgets keeps within the agent's rate limit.
pub struct Rereads {
    /// When it last re-read (ms since the epoch).
    last: f64,
    /// Refunds on their way at the last question, and since when that number last rose.
    on_its_way: usize,
    since: f64,
}

impl Rereads {
    /// How often while a refund has just set off.
    pub const FAST_MS: f64 = 5_000.0;
    /// For how long after it set off.
    pub const FAST_FOR_MS: f64 = 60_000.0;
    /// How often otherwise.
    pub const IDLE_MS: f64 = 60_000.0;

    /// Starting at `now`, the first idle re-read `offset` ms early (a random moment within the
    /// minute, so that widgets of one page do not re-read together).
    pub fn new(now: f64, offset: f64) -> Self {
        Self {
            last: now - offset,
            on_its_way: 0,
            since: now,
        }
    }

    /// Whether to re-read now, `on_its_way` refunds being on their way.
    pub fn due(&mut self, on_its_way: usize, now: f64) -> bool {
        if on_its_way > self.on_its_way {
            self.since = now;
        }
        self.on_its_way = on_its_way;
        let waited = now - self.last;
        let fast = on_its_way > 0 && now - self.since < Self::FAST_FOR_MS;
        let due = waited >= Self::IDLE_MS || (fast && waited >= Self::FAST_MS - 500.0);
        if due {
            self.last = now;
        }
        due
    }
}
