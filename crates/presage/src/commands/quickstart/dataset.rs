//! The quickstart's synthetic subscription business: users, plans, 90 days of events
//! and backtest labels, the same bytes forever for the same `end`.
//!
//! # The generative story
//!
//! About 100,000 users subscribe to one of three plans (basic, plus, pro). Three in
//! four signed up before the 90-day window (tenure up to two years); the rest sign up
//! during it. Every user is simulated day by day from the window start (or their
//! signup day) until they cancel or the window ends:
//!
//! - **Engagement drifts.** Each user has a base activity level (sessions a day, log-
//!   normal across users, higher on pricier plans) times a latent engagement that
//!   moves every day: a noisy pull towards the user's current regime, *engaged*
//!   (about 1) or *disengaged* (about 0.08). An engaged user drops into the
//!   disengaged regime with probability 1% a day, and one support ticket in four
//!   starts a drop; a disengaged one recovers with 7% a day, so episodes last about
//!   two weeks.
//! - **Events follow engagement.** Sessions are Poisson with rate base × engagement;
//!   a session leads to an add-on purchase 2% of the time; the plan price is charged
//!   every 30 days from signup; support tickets come at 0.4% a day, 3% while
//!   disengaged.
//! - **Add-ons follow taste.** An add-on's price tier (4.99, 9.99, 19.99) is drawn
//!   uniformly; which of the tier's three products it is (one per category:
//!   media, tools, support) follows the user's taste: category weights that depend
//!   on the age band (younger users lean to media, older ones to support), and for
//!   three users in five a favourite category that takes most of the weight. The
//!   taste comes from a second stream per user, so the churn story above draws
//!   exactly the numbers it did before products existed.
//! - **Churn follows recent engagement.** The daily hazard of a `cancel` is a base
//!   rate times: `exp(4 × (1 − recent))` where `recent` is an exponentially weighted
//!   average of engagement over roughly the last week; `1 + 0.6 × tickets` with
//!   tickets decaying with a ten-day half-life; a price factor (basic 0.8, plus 1.0,
//!   pro 1.35); a new-user factor `1 + 1.5 × exp(−tenure / 45 days)`; and a hidden
//!   age factor the features never see. A cancelled user produces no more events.
//!
//! # Why freshness matters
//!
//! Most cancellations follow a drop in engagement that began a few days earlier. A
//! feature row computed a week ago has not seen that drop yet (and still shows the
//! users who have since recovered as at risk), so the same model scored on old
//! features ranks users measurably worse. On the users active 14 days before `end`,
//! the quickstart's model (`examples/churn/train.py`) reaches a ROC AUC of 0.727 on
//! fresh features, 0.717 on features a day old, 0.690 three days old, 0.643 a week
//! old and 0.582 two weeks old (0.5 is a coin toss).
//!
//! # Files
//!
//! - `data/users.csv`: `user_id`, `signup_date`, `plan`, `country`, `age_band`.
//! - `data/plans.json` (newline-delimited JSON): `plan`, `monthly_price`.
//! - `data/products.json` (newline-delimited JSON): the nine add-ons, `product`,
//!   `category`, `price`.
//! - `data/events/part-NNN.parquet`, one per 15 days, sorted by time: `user_id`
//!   (utf8), `ts` (timestamp µs, no time zone, UTC by convention), `kind` (`session`,
//!   `purchase`, `support_ticket`, `cancel`), `amount` (the price for purchases, 0
//!   otherwise), `product` (the add-on bought; null for plan charges and every other
//!   kind).
//! - `data/labels.parquet`: `user_id`, `time` (timestamp µs: the moments an
//!   application asks for a prediction, spread over the 30 days that end 14 days
//!   before `end`, for users active then), `label` (int64: 1 when the user cancels
//!   within 14 days after `time`).
//!
//! Every user draws from their own SplitMix64 stream seeded by their index, so the
//! data depends on nothing but `end`, and only through the calendar: the same
//! relative history is laid onto whichever 90 days end at `end`.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use arrow::array::{
    ArrayRef, Float64Builder, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Duration, Utc};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

/// What [`generate`] wrote.
#[derive(Debug, Clone)]
pub struct DatasetSummary {
    /// Rows in `data/users.csv`.
    pub users: usize,
    /// Rows across `data/events/*.parquet`.
    pub events: usize,
    /// Rows in `data/labels.parquet`.
    pub label_rows: usize,
    /// The first instant the events cover (`end` − 90 days).
    pub start: DateTime<Utc>,
    /// The instant the data stops.
    pub end: DateTime<Utc>,
}

/// Users in the dataset.
const USERS: usize = 100_000;
/// Days of events before `end`.
const DAYS: i64 = 90;
/// Days per events file: several files so readers can split the work.
const DAYS_PER_PART: i64 = 15;
/// Days over which prediction requests (label rows) are spread.
const LABEL_DAYS: i64 = 30;
/// A label is 1 when the user cancels within this many days after the request.
const HORIZON_DAYS: i64 = 14;
/// Chance that an active user asks for a prediction on a given day of the label window.
const REQUEST_PER_DAY: f64 = 0.03;
/// Share of users who signed up before the window.
const SIGNED_UP_BEFORE: f64 = 0.75;
/// The oldest signup, in days before the window.
const MAX_TENURE_DAYS: f64 = 730.0;
/// Mixed into every user's seed; changing it changes every byte of the dataset.
const SEED: u64 = 0x7072_6573_6167_6531;
const MICROS_PER_DAY: i64 = 86_400_000_000;
/// Rows per Parquet row group: a few per file, so readers can split files too.
const ROW_GROUP: usize = 256 * 1024;

/// Daily chance that an engaged user becomes disengaged.
const P_DROP: f64 = 0.01;
/// Daily chance that a disengaged user recovers.
const P_RECOVER: f64 = 0.07;
/// Chance that a support ticket starts a disengaged episode.
const P_DROP_AFTER_TICKET: f64 = 0.25;
/// Engagement a disengaged user drifts to (an engaged one drifts to 1).
const DISENGAGED_LEVEL: f64 = 0.08;
/// How far engagement moves towards its regime's level each day (in log space).
const PULL: f64 = 0.3;
/// Day-to-day noise of log engagement.
const NOISE: f64 = 0.1;
/// Weight of today in the "recent engagement" average (about a week's memory).
const RECENT_WEIGHT: f64 = 0.25;
/// Daily cancel hazard of an engaged, long-standing plus user.
const BASE_HAZARD: f64 = 0.0004;
/// How strongly low recent engagement raises the hazard.
const ENGAGEMENT_HAZARD: f64 = 4.0;
/// Hazard increase per (decayed) recent support ticket.
const TICKET_HAZARD: f64 = 0.6;
/// Daily decay of the recent-ticket count (a ten-day half-life).
const TICKET_DECAY: f64 = 0.933;
/// Mean sessions a day of an engaged user on the plus plan.
const SESSIONS_PER_DAY: f64 = 0.8;
/// Chance that a session comes with an add-on purchase.
const P_ADDON: f64 = 0.02;
/// Add-on prices.
const ADDONS: [f64; 3] = [4.99, 9.99, 19.99];
/// Add-on categories.
const CATEGORIES: [&str; 3] = ["media", "tools", "support"];
/// Add-on products by category, then price tier (the order of `ADDONS`).
const PRODUCTS: [[&str; 3]; 3] = [
    ["stickers", "hd_video", "offline_library"],
    ["extra_storage", "automations", "team_seats"],
    ["live_chat", "priority_support", "expert_session"],
];
/// Mixed into every user's taste seed (a stream apart from the main one).
const TASTE_SEED: u64 = 0x7461_7374_6573_3031;
/// Chance that a user has a favourite add-on category.
const P_FAVOURITE: f64 = 0.6;
/// Share of a favourite category in a user's taste.
const FAVOURITE_WEIGHT: f64 = 0.7;
/// No product: the `product` of events that are not add-on purchases.
const NO_PRODUCT: u8 = u8::MAX;
/// Daily ticket chances, engaged and disengaged.
const P_TICKET: [f64; 2] = [0.004, 0.03];

/// A subscription plan.
struct Plan {
    name: &'static str,
    monthly_price: f64,
    /// Share of users on it.
    share: f64,
    /// Multiplies the cancel hazard: pricier plans are cancelled more readily.
    hazard: f64,
    /// Multiplies the session rate: pricier plans attract heavier users.
    activity: f64,
}

const PLANS: [Plan; 3] = [
    Plan {
        name: "basic",
        monthly_price: 9.99,
        share: 0.55,
        hazard: 0.8,
        activity: 0.8,
    },
    Plan {
        name: "plus",
        monthly_price: 19.99,
        share: 0.30,
        hazard: 1.0,
        activity: 1.0,
    },
    Plan {
        name: "pro",
        monthly_price: 39.99,
        share: 0.15,
        hazard: 1.35,
        activity: 1.3,
    },
];

const COUNTRIES: [(&str, f64); 8] = [
    ("US", 0.35),
    ("GB", 0.12),
    ("DE", 0.12),
    ("FR", 0.08),
    ("BR", 0.10),
    ("IN", 0.10),
    ("CA", 0.07),
    ("AU", 0.06),
];

/// Age bands, their shares and their hidden effect on the cancel hazard.
const AGE_BANDS: [(&str, f64, f64); 5] = [
    ("18-24", 0.18, 1.3),
    ("25-34", 0.32, 1.1),
    ("35-44", 0.24, 1.0),
    ("45-54", 0.15, 0.9),
    ("55+", 0.11, 0.8),
];

/// Add-on category weights (media, tools, support) of each age band.
const AGE_TASTE: [[f64; 3]; 5] = [
    [0.60, 0.30, 0.10],
    [0.45, 0.40, 0.15],
    [0.30, 0.45, 0.25],
    [0.20, 0.40, 0.40],
    [0.15, 0.30, 0.55],
];

const SESSION: u8 = 0;
const PURCHASE: u8 = 1;
const TICKET: u8 = 2;
const CANCEL: u8 = 3;
const KINDS: [&str; 4] = ["session", "purchase", "support_ticket", "cancel"];

/// SplitMix64: tiny, fast, and good enough for simulation; hand-written so the data
/// never changes with a dependency's version.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // One scramble so neighbouring seeds start far apart.
        let mut rng = Rng(seed);
        rng.next_u64();
        rng
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    fn chance(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// Uniform in `[0, n)`.
    fn below(&mut self, n: i64) -> i64 {
        // The modulo bias is far below anything the simulation can show.
        (self.next_u64() % n as u64) as i64
    }

    /// About standard normal: the Irwin–Hall sum of four uniforms from one draw,
    /// rescaled. Cheaper than Box–Muller and close enough for noise (it never goes
    /// past ±3.5).
    fn normal(&mut self) -> f64 {
        let x = self.next_u64();
        let sum: u64 = (0..4).map(|i| (x >> (16 * i)) & 0xffff).sum();
        (sum as f64 / 65536.0 - 2.0) * 3f64.sqrt()
    }

    /// Poisson by multiplying uniforms: rates here are a few a day at most.
    fn poisson(&mut self, rate: f64) -> u32 {
        let limit = (-rate).exp();
        let mut product = self.uniform();
        let mut count = 0;
        while product > limit {
            count += 1;
            product *= self.uniform();
        }
        count
    }

    /// An index drawn with the given weights (they sum to about 1).
    fn pick(&mut self, weights: impl Iterator<Item = f64>) -> usize {
        let u = self.uniform();
        let mut total = 0.0;
        let mut last = 0;
        for (i, w) in weights.enumerate() {
            total += w;
            if u < total {
                return i;
            }
            last = i;
        }
        last
    }
}

/// One user: fixed attributes and the simulation state.
struct User {
    rng: Rng,
    /// Picks add-on categories; apart from `rng` so products never shift the rest.
    taste_rng: Rng,
    /// Add-on category weights (media, tools, support), summing to 1.
    taste: [f64; 3],
    /// Signup day relative to the window start (negative: before it).
    signup_day: i64,
    plan: usize,
    country: usize,
    age_band: usize,
    /// Sessions a day when fully engaged.
    base_rate: f64,
    /// Everything fixed that multiplies the hazard (plan, age).
    hazard: f64,
    disengaged: bool,
    log_engagement: f64,
    /// Exponentially weighted engagement over about the last week.
    recent: f64,
    /// Support tickets, decayed.
    tickets: f64,
    /// The cancel instant (µs), if the user cancelled in the window.
    cancelled_at: Option<i64>,
}

impl User {
    fn new(index: usize) -> User {
        let mut rng = Rng::new(SEED ^ (index as u64).wrapping_mul(0xd1b5_4a32_d192_ed03));
        let signup_day = if rng.chance(SIGNED_UP_BEFORE) {
            // Skewed towards recent signups, as survivors of a growing business are.
            -1 - (MAX_TENURE_DAYS * rng.uniform().powf(1.6)) as i64
        } else {
            rng.below(DAYS)
        };
        let plan = rng.pick(PLANS.iter().map(|p| p.share));
        let country = rng.pick(COUNTRIES.iter().map(|c| c.1));
        let age_band = rng.pick(AGE_BANDS.iter().map(|a| a.1));
        // Log-normal with mean 1 across users.
        let base_rate = SESSIONS_PER_DAY * PLANS[plan].activity * (0.4 * rng.normal() - 0.08).exp();
        // Users already subscribed start in the long-run mix of regimes; new ones
        // start engaged.
        let disengaged = signup_day < 0 && rng.chance(P_DROP / (P_DROP + P_RECOVER));
        let level = if disengaged {
            DISENGAGED_LEVEL.ln()
        } else {
            0.0
        };
        let log_engagement = level + NOISE * rng.normal();
        let mut taste_rng =
            Rng::new(TASTE_SEED ^ (index as u64).wrapping_mul(0x9e6c_63d0_676a_9a99));
        let mut taste = AGE_TASTE[age_band];
        if taste_rng.chance(P_FAVOURITE) {
            let favourite = taste_rng.pick(taste.iter().copied());
            for (i, weight) in taste.iter_mut().enumerate() {
                *weight = (1.0 - FAVOURITE_WEIGHT) * *weight
                    + if i == favourite {
                        FAVOURITE_WEIGHT
                    } else {
                        0.0
                    };
            }
        }
        User {
            rng,
            taste_rng,
            taste,
            signup_day,
            plan,
            country,
            age_band,
            base_rate,
            hazard: PLANS[plan].hazard * AGE_BANDS[age_band].2,
            disengaged,
            log_engagement,
            recent: log_engagement.exp(),
            tickets: 0.0,
            cancelled_at: None,
        }
    }

    /// Simulates day `day` (relative to the window start, which is `start_us`),
    /// appending its events; returns a prediction request instant when the user asks
    /// for one today.
    fn step(
        &mut self,
        day: i64,
        day_start: i64,
        request_window: bool,
        events: &mut Vec<Event>,
        user: u32,
    ) -> Option<i64> {
        let rng = &mut self.rng;
        if rng.chance(if self.disengaged { P_RECOVER } else { P_DROP }) {
            self.disengaged = !self.disengaged;
        }
        let level = if self.disengaged {
            DISENGAGED_LEVEL.ln()
        } else {
            0.0
        };
        self.log_engagement += PULL * (level - self.log_engagement) + NOISE * rng.normal();
        let engagement = self.log_engagement.exp();
        self.recent += RECENT_WEIGHT * (engagement - self.recent);
        self.tickets *= TICKET_DECAY;

        let tenure = (day - self.signup_day) as f64;
        let hazard = BASE_HAZARD
            * self.hazard
            * (1.0 + 1.5 * (-tenure / 45.0).exp())
            * (ENGAGEMENT_HAZARD * (1.0 - self.recent)).exp()
            * (1.0 + TICKET_HAZARD * self.tickets);
        let cancel_at = rng
            .chance(hazard)
            .then(|| day_start + rng.below(MICROS_PER_DAY));

        let first = events.len();
        let sessions = rng.poisson(self.base_rate * engagement);
        for _ in 0..sessions {
            let ts = day_start + rng.below(MICROS_PER_DAY);
            events.push(Event {
                ts,
                user,
                kind: SESSION,
                amount: 0.0,
                product: NO_PRODUCT,
            });
            if rng.chance(P_ADDON) {
                let tier = rng.below(ADDONS.len() as i64) as usize;
                let price = ADDONS[tier];
                let category = self.taste_rng.pick(self.taste.iter().copied());
                // A purchase a few minutes into the session.
                let ts =
                    (ts + 60_000_000 + rng.below(600_000_000)).min(day_start + MICROS_PER_DAY - 1);
                events.push(Event {
                    ts,
                    user,
                    kind: PURCHASE,
                    amount: price,
                    product: (category * ADDONS.len() + tier) as u8,
                });
            }
        }
        if (day - self.signup_day) % 30 == 0 {
            let ts = day_start + rng.below(MICROS_PER_DAY);
            events.push(Event {
                ts,
                user,
                kind: PURCHASE,
                amount: PLANS[self.plan].monthly_price,
                product: NO_PRODUCT,
            });
        }
        if rng.chance(P_TICKET[usize::from(self.disengaged)]) {
            let ts = day_start + rng.below(MICROS_PER_DAY);
            events.push(Event {
                ts,
                user,
                kind: TICKET,
                amount: 0.0,
                product: NO_PRODUCT,
            });
            self.tickets += 1.0;
            if !self.disengaged && rng.chance(P_DROP_AFTER_TICKET) {
                self.disengaged = true;
            }
        }
        // Drawn every day of the window whatever happened, so one user's draws never
        // shift with another branch taken.
        let request = request_window
            .then(|| {
                (
                    rng.chance(REQUEST_PER_DAY),
                    day_start + rng.below(MICROS_PER_DAY),
                )
            })
            .and_then(|(asks, at)| asks.then_some(at));
        if let Some(at) = cancel_at {
            // Nothing happens after a cancel.
            let mut kept = first;
            for i in first..events.len() {
                if events[i].ts < at {
                    events.swap(kept, i);
                    kept += 1;
                }
            }
            events.truncate(kept);
            events.push(Event {
                ts: at,
                user,
                kind: CANCEL,
                amount: 0.0,
                product: NO_PRODUCT,
            });
            self.cancelled_at = Some(at);
            return request.filter(|&t| t < at);
        }
        request
    }
}

#[derive(Debug, Clone, Copy)]
struct Event {
    ts: i64,
    user: u32,
    kind: u8,
    amount: f64,
    /// Index into the flattened `PRODUCTS`, or `NO_PRODUCT`.
    product: u8,
}

/// Writes the dataset under `dir/data/` (created if missing): 90 days of a
/// subscription business ending at `end`. `progress` gets one line per file written.
pub fn generate(
    dir: &Path,
    end: DateTime<Utc>,
    progress: &mut dyn FnMut(&str),
) -> Result<DatasetSummary> {
    let start = end - Duration::days(DAYS);
    let data = dir.join("data");
    fs_err::create_dir_all(data.join("events"))?;

    let mut users: Vec<User> = (0..USERS).map(User::new).collect();
    let ids: Vec<String> = (0..USERS).map(|i| format!("u{i:06}")).collect();
    write_users(&data.join("users.csv"), &users, &ids, start)?;
    progress(&format!("wrote {USERS} users to data/users.csv"));
    write_plans(&data.join("plans.json"))?;
    write_products(&data.join("products.json"))?;

    let start_us = start.timestamp_micros();
    let request_days = (DAYS - HORIZON_DAYS - LABEL_DAYS)..(DAYS - HORIZON_DAYS);
    let mut requests: Vec<(i64, u32)> = Vec::new();
    let mut day_events = Vec::new();
    let mut part: Option<EventsPart> = None;
    let mut events = 0;
    for day in 0..DAYS {
        if day % DAYS_PER_PART == 0 {
            if let Some(done) = part.take() {
                events += done.finish(progress)?;
            }
            let path = data
                .join("events")
                .join(format!("part-{:03}.parquet", day / DAYS_PER_PART));
            part = Some(EventsPart::create(path)?);
        }
        let day_start = start_us + day * MICROS_PER_DAY;
        let request_window = request_days.contains(&day);
        day_events.clear();
        for (index, user) in users.iter_mut().enumerate() {
            if user.signup_day > day || user.cancelled_at.is_some() {
                continue;
            }
            if let Some(at) = user.step(
                day,
                day_start,
                request_window,
                &mut day_events,
                index as u32,
            ) {
                requests.push((at, index as u32));
            }
        }
        // Instants are microsecond draws: ties are rare, and the sort is deterministic anyway.
        day_events.sort_unstable_by_key(|e| e.ts);
        part.as_mut()
            .expect("a part is open")
            .write(&day_events, &ids)?;
    }
    if let Some(done) = part.take() {
        events += done.finish(progress)?;
    }

    requests.sort_unstable();
    write_labels(&data.join("labels.parquet"), &requests, &users, &ids)?;
    progress(&format!(
        "wrote {} label rows to data/labels.parquet",
        requests.len()
    ));

    Ok(DatasetSummary {
        users: USERS,
        events,
        label_rows: requests.len(),
        start,
        end,
    })
}

fn write_users(path: &Path, users: &[User], ids: &[String], start: DateTime<Utc>) -> Result<()> {
    let mut out = BufWriter::new(fs_err::File::create(path)?);
    writeln!(out, "user_id,signup_date,plan,country,age_band")?;
    for (user, id) in users.iter().zip(ids) {
        let signup = (start + Duration::days(user.signup_day)).format("%Y-%m-%d");
        writeln!(
            out,
            "{id},{signup},{},{},{}",
            PLANS[user.plan].name, COUNTRIES[user.country].0, AGE_BANDS[user.age_band].0
        )?;
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(())
}

fn write_plans(path: &Path) -> Result<()> {
    let mut text = String::new();
    for plan in &PLANS {
        text.push_str(&format!(
            "{{\"plan\":\"{}\",\"monthly_price\":{}}}\n",
            plan.name, plan.monthly_price
        ));
    }
    fs_err::write(path, text)?;
    Ok(())
}

fn write_products(path: &Path) -> Result<()> {
    let mut text = String::new();
    for (category, products) in CATEGORIES.iter().zip(&PRODUCTS) {
        for (product, price) in products.iter().zip(ADDONS) {
            text.push_str(&format!(
                "{{\"product\":\"{product}\",\"category\":\"{category}\",\"price\":{price}}}\n"
            ));
        }
    }
    fs_err::write(path, text)?;
    Ok(())
}

/// The name of a product index (category × tier), `None` for `NO_PRODUCT`.
fn product_name(product: u8) -> Option<&'static str> {
    let i = usize::from(product);
    PRODUCTS
        .get(i / ADDONS.len())
        .map(|tiers| tiers[i % ADDONS.len()])
}

fn parquet_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(1).expect("level 1 is valid"),
        ))
        .set_max_row_group_row_count(Some(ROW_GROUP))
        .set_column_dictionary_enabled(parquet::schema::types::ColumnPath::from("user_id"), false)
        .build()
}

fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, None)
}

/// One events file being written, a day's batch at a time.
struct EventsPart {
    path: PathBuf,
    schema: SchemaRef,
    writer: ArrowWriter<fs_err::File>,
    rows: usize,
}

impl EventsPart {
    fn create(path: PathBuf) -> Result<EventsPart> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Utf8, false),
            Field::new("ts", timestamp_type(), false),
            Field::new("kind", DataType::Utf8, false),
            Field::new("amount", DataType::Float64, false),
            Field::new("product", DataType::Utf8, true),
        ]));
        let file = fs_err::File::create(&path)?;
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(parquet_properties()))
            .with_context(|| format!("writing `{}`", path.display()))?;
        Ok(EventsPart {
            path,
            schema,
            writer,
            rows: 0,
        })
    }

    fn write(&mut self, events: &[Event], ids: &[String]) -> Result<()> {
        let mut user_id = StringBuilder::with_capacity(events.len(), events.len() * 7);
        let mut ts = TimestampMicrosecondBuilder::with_capacity(events.len());
        let mut kind = StringBuilder::with_capacity(events.len(), events.len() * 8);
        let mut amount = Float64Builder::with_capacity(events.len());
        let mut product = StringBuilder::new();
        for e in events {
            user_id.append_value(&ids[e.user as usize]);
            ts.append_value(e.ts);
            kind.append_value(KINDS[usize::from(e.kind)]);
            amount.append_value(e.amount);
            product.append_option(product_name(e.product));
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(user_id.finish()),
            Arc::new(ts.finish()),
            Arc::new(kind.finish()),
            Arc::new(amount.finish()),
            Arc::new(product.finish()),
        ];
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        self.writer
            .write(&batch)
            .with_context(|| format!("writing `{}`", self.path.display()))?;
        self.rows += events.len();
        Ok(())
    }

    /// Closes the file; returns its row count.
    fn finish(self, progress: &mut dyn FnMut(&str)) -> Result<usize> {
        let file = self
            .writer
            .into_inner()
            .with_context(|| format!("writing `{}`", self.path.display()))?;
        file.sync_all()?;
        let name = self.path.file_name().unwrap_or_default().to_string_lossy();
        progress(&format!("wrote {} events to data/events/{name}", self.rows));
        Ok(self.rows)
    }
}

fn write_labels(
    path: &Path,
    requests: &[(i64, u32)],
    users: &[User],
    ids: &[String],
) -> Result<()> {
    let horizon = HORIZON_DAYS * MICROS_PER_DAY;
    let mut user_id = StringBuilder::with_capacity(requests.len(), requests.len() * 7);
    let mut time = TimestampMicrosecondBuilder::with_capacity(requests.len());
    let mut label = Int64Builder::with_capacity(requests.len());
    for &(at, user) in requests {
        let cancels = users[user as usize]
            .cancelled_at
            .is_some_and(|c| c > at && c <= at + horizon);
        user_id.append_value(&ids[user as usize]);
        time.append_value(at);
        label.append_value(i64::from(cancels));
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Utf8, false),
        Field::new("time", timestamp_type(), false),
        Field::new("label", DataType::Int64, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(user_id.finish()),
        Arc::new(time.finish()),
        Arc::new(label.finish()),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    let file = fs_err::File::create(path)?;
    let mut writer = ArrowWriter::try_new(file, schema, Some(parquet_properties()))
        .with_context(|| format!("writing `{}`", path.display()))?;
    writer
        .write(&batch)
        .with_context(|| format!("writing `{}`", path.display()))?;
    writer
        .into_inner()
        .with_context(|| format!("writing `{}`", path.display()))?
        .sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_the_pinned_dataset() {
        // `examples/churn/model.onnx` was trained on exactly this data: if these counts
        // move, retrain it (examples/churn/README.md).
        let dir =
            std::env::temp_dir().join(format!("presage-quickstart-dataset-{}", std::process::id()));
        let end: DateTime<Utc> = "2026-11-28T00:00:00Z".parse().unwrap();
        let mut lines = Vec::new();
        let summary = generate(&dir, end, &mut |line| lines.push(line.to_owned())).unwrap();
        assert_eq!(
            (summary.users, summary.events, summary.label_rows),
            (100_000, 5_121_312, 72_986)
        );
        assert_eq!(
            summary.start,
            "2026-08-30T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(lines.len(), 8, "{lines:?}");
        let parts = fs_err::read_dir(dir.join("data/events")).unwrap().count();
        assert_eq!(parts, 6);
        fs_err::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn normal_and_poisson_have_the_right_moments() {
        let mut rng = Rng::new(7);
        let n = 200_000;
        let normals: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        let mean = normals.iter().sum::<f64>() / n as f64;
        let var = normals.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(
            mean.abs() < 0.01 && (var - 1.0).abs() < 0.01,
            "mean {mean}, variance {var}"
        );
        let counts: u64 = (0..n).map(|_| u64::from(rng.poisson(2.5))).sum();
        let rate = counts as f64 / n as f64;
        assert!((rate - 2.5).abs() < 0.02, "rate {rate}");
    }

    #[test]
    fn rng_is_stable() {
        // Pins the stream: a change here changes every quickstart dataset.
        let mut rng = Rng(0);
        assert_eq!(rng.next_u64(), 0xe220_a839_7b1d_cdaf);
    }
}
