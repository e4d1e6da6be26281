//! What viewers are into, folded from `dev.eddy.interaction.v1` events on the control plane:
//! trending items per region, item-to-item recommendations per viewer, and the forecast that
//! turns both into `dev.eddy.prewarm.v1` hints.
//!
//! - **Trending** ([`eddy_predict::trending`]): per region and across all regions (`region`
//!   absent), scores halve every [`TRENDING_HALF_LIFE`]; play 1, complete 2, like 3.
//! - **Recommendations** ([`eddy_predict::recommend`]): co-occurrence of what viewers had, the
//!   most popular filling the rest (and all of it for a viewer seen nowhere).
//! - **Hints** ([`Interest::hints`], every [`HINT_EVERY`]): items the forecast
//!   ([`eddy_predict::forecast`]) sees rising or new, and items many recently active viewers
//!   are being recommended, each with the entry object its interactions named (`url`); an item
//!   whose interactions never named one cannot be pre-warmed and is left out.
//!
//! Everything is bounded whatever the stream: the tables of the three models, the item → URL
//! map ([`MAX_URLS`]), the recently active viewers ([`ACTIVE_VIEWERS`]) and the hint cool-downs.
//! Time is the control plane's own monotonic clock, in seconds; the state lives in memory and
//! starts afresh with the process.

use std::collections::{HashMap, VecDeque};

use eddy_events::{Action, Interaction, Prewarm, PrewarmReason};
use eddy_predict::forecast::{Forecast, ForecastConfig};
use eddy_predict::recommend::{self, Limits, Recommender};
use eddy_predict::trending::Trending;

/// Trending scores halve this often, in seconds.
pub const TRENDING_HALF_LIFE: f64 = 3600.0;
/// Items kept per region.
pub const TRENDING_ITEMS: usize = 1000;
/// Regions kept.
pub const TRENDING_REGIONS: usize = 256;
/// How often hints are made.
pub const HINT_EVERY: std::time::Duration = std::time::Duration::from_secs(10);
/// Items whose entry URL is remembered.
pub const MAX_URLS: usize = 100_000;
/// Recently active viewers whose recommendations count toward hints.
pub const ACTIVE_VIEWERS: usize = 512;
/// Rising or new items hinted per round, at most.
const RISING_PER_ROUND: usize = 16;
/// Recommended items hinted per round, at most.
const RECOMMENDED_PER_ROUND: usize = 8;
/// An item recommended to at least this many of the recently active viewers is hinted.
const RECOMMENDED_MIN_VIEWERS: usize = 5;
/// Recommendations per active viewer that count.
const RECOMMENDED_PER_VIEWER: usize = 3;
/// The same item is not hinted as recommended again within this long, in seconds.
const RECOMMENDED_COOLDOWN: f64 = 600.0;
/// The region name under which every interaction also counts.
const ALL: &str = "";

/// One trending item.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Scored {
    /// The item.
    pub item: String,
    /// Its decayed score.
    pub score: f64,
    /// Its entry object, when an interaction named one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// The fold.
pub struct Interest {
    trending: Trending,
    recommender: Recommender,
    forecast: Forecast<String>,
    /// Item → (entry URL, when last named); the one named longest ago goes when full.
    urls: HashMap<String, (String, f64)>,
    urls_order: VecDeque<(f64, String)>,
    /// At most this many items in `urls` ([`MAX_URLS`]).
    max_urls: usize,
    /// Viewers who played something lately, newest last, each once.
    active: VecDeque<String>,
    /// Items hinted as recommended, and when.
    recommended_at: HashMap<String, f64>,
    /// Interactions folded.
    pub folded: u64,
}

impl Default for Interest {
    fn default() -> Self {
        Interest::new(Limits::default(), ForecastConfig::default())
    }
}

impl Interest {
    /// An empty fold with these bounds.
    pub fn new(limits: Limits, forecast: ForecastConfig) -> Interest {
        Interest {
            trending: Trending::new(TRENDING_HALF_LIFE, TRENDING_ITEMS, TRENDING_REGIONS),
            recommender: Recommender::new(limits),
            forecast: Forecast::new(forecast),
            urls: HashMap::new(),
            urls_order: VecDeque::new(),
            max_urls: MAX_URLS,
            active: VecDeque::new(),
            recommended_at: HashMap::new(),
            folded: 0,
        }
    }

    /// Fold one (checked) interaction at `now` seconds.
    pub fn apply(&mut self, i: &Interaction, now: f64) {
        self.folded += 1;
        let w = recommend::weight(i.action);
        self.recommender.record(&i.viewer, &i.item, i.action);
        // Trending and the forecast count interest only: a skip lowers popularity above, and
        // adds nothing here.
        self.trending.record(ALL, &i.item, w, now);
        if let Some(r) = &i.region {
            self.trending.record(r, &i.item, w, now);
        }
        if w > 0.0 {
            self.forecast.record(&i.item, w, now);
        }
        if let Some(u) = &i.url {
            self.remember_url(&i.item, u, now);
        }
        if i.action == Action::Play {
            if let Some(at) = self.active.iter().position(|v| *v == i.viewer) {
                self.active.remove(at);
            }
            if self.active.len() >= ACTIVE_VIEWERS {
                self.active.pop_front();
            }
            self.active.push_back(i.viewer.clone());
        }
    }

    fn remember_url(&mut self, item: &str, url: &str, now: f64) {
        if !self.urls.contains_key(item) && self.urls.len() >= self.max_urls {
            // The order queue may hold stale entries (an item named again later): skip them.
            while let Some((at, old)) = self.urls_order.pop_front() {
                if self.urls.get(&old).is_some_and(|(_, t)| *t == at) {
                    self.urls.remove(&old);
                    break;
                }
            }
        }
        self.urls.insert(item.to_string(), (url.to_string(), now));
        self.urls_order.push_back((now, item.to_string()));
        // Stale entries are bounded too: past twice the table, drop those that are stale.
        if self.urls_order.len() > 2 * self.max_urls {
            let urls = &self.urls;
            self.urls_order
                .retain(|(at, item)| urls.get(item).is_some_and(|(_, t)| t == at));
        }
    }

    fn url_of(&self, item: &str) -> Option<String> {
        self.urls.get(item).map(|(u, _)| u.clone())
    }

    /// The `n` items trending in `region` (all regions when `None`), highest first.
    pub fn trending(&self, region: Option<&str>, n: usize, now: f64) -> Vec<Scored> {
        self.trending
            .top(region.unwrap_or(ALL), n, now)
            .into_iter()
            .map(|(item, score)| Scored {
                url: self.url_of(&item),
                item,
                score,
            })
            .collect()
    }

    /// Up to `n` items for `viewer`, and how they were chosen: `co-occurrence` when the viewer's
    /// history links to anything, else `most-popular`.
    pub fn recommendations(&self, viewer: &str, n: usize) -> (Vec<String>, &'static str) {
        let linked = self.recommender.linked(viewer, 1);
        let basis = if linked.is_empty() {
            "most-popular"
        } else {
            "co-occurrence"
        };
        (self.recommender.recommend(viewer, n), basis)
    }

    /// The hints due at `now`: rising and new items, then items many recently active viewers
    /// are recommended, each with its entry URL (items without one are left out).
    pub fn hints(&mut self, now: f64) -> Vec<Prewarm> {
        let mut out = Vec::new();
        for (item, rate) in self.forecast.rising(now, RISING_PER_ROUND) {
            let Some(url) = self.url_of(&item) else {
                continue;
            };
            // An item the fleet has not seen for long before this burst is new.
            let reason = if self.forecast.is_new(&item, now) {
                PrewarmReason::New
            } else {
                PrewarmReason::Rising
            };
            out.push(Prewarm {
                urls: vec![url],
                reason,
                item: Some(item),
                region: None,
                forecast: rate,
            });
        }
        let mut votes: HashMap<String, usize> = HashMap::new();
        for v in &self.active {
            for item in self.recommender.linked(v, RECOMMENDED_PER_VIEWER) {
                *votes.entry(item).or_default() += 1;
            }
        }
        let mut ranked: Vec<(String, usize)> = votes
            .into_iter()
            .filter(|(_, n)| *n >= RECOMMENDED_MIN_VIEWERS)
            .collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        self.recommended_at
            .retain(|_, at| now - *at < RECOMMENDED_COOLDOWN);
        for (item, viewers) in ranked {
            if out.len() >= RISING_PER_ROUND + RECOMMENDED_PER_ROUND {
                break;
            }
            if self.recommended_at.contains_key(&item)
                || out.iter().any(|h| h.item.as_ref() == Some(&item))
            {
                continue;
            }
            let Some(url) = self.url_of(&item) else {
                continue;
            };
            self.recommended_at.insert(item.clone(), now);
            out.push(Prewarm {
                urls: vec![url],
                reason: PrewarmReason::Recommended,
                item: Some(item),
                region: None,
                forecast: viewers as f64,
            });
        }
        out
    }

    /// Entries held: (items with a URL, active viewers, recommender items, recommender viewers).
    pub fn size(&self) -> (usize, usize, usize, usize) {
        let (items, viewers) = self.recommender.size();
        (self.urls.len(), self.active.len(), items, viewers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interaction(viewer: &str, item: &str, action: Action, region: Option<&str>) -> Interaction {
        Interaction {
            viewer: viewer.into(),
            item: item.into(),
            action,
            region: region.map(str::to_string),
            url: Some(format!("v.test/{item}/master.m3u8")),
        }
    }

    #[test]
    fn trending_is_per_region_and_across_them() {
        let mut f = Interest::default();
        for v in 0..20 {
            f.apply(
                &interaction(&format!("v{v}"), "derby", Action::Play, Some("eu")),
                1.0,
            );
        }
        for v in 0..5 {
            f.apply(
                &interaction(&format!("w{v}"), "final", Action::Like, Some("us")),
                1.0,
            );
        }
        let eu = f.trending(Some("eu"), 5, 2.0);
        assert_eq!(eu.first().map(|s| s.item.as_str()), Some("derby"));
        assert_eq!(eu.len(), 1);
        assert_eq!(eu[0].url.as_deref(), Some("v.test/derby/master.m3u8"));
        let all = f.trending(None, 5, 2.0);
        assert_eq!(all.len(), 2);
        // 20 plays against 5 likes (15): derby first everywhere.
        assert_eq!(all[0].item, "derby");
        assert!(f.trending(Some("apac"), 5, 2.0).is_empty());
    }

    #[test]
    fn a_viewer_with_history_gets_co_occurrence_and_a_stranger_the_most_popular() {
        let mut f = Interest::default();
        for v in 0..30 {
            let v = format!("v{v}");
            f.apply(&interaction(&v, "s1e1", Action::Complete, None), 1.0);
            f.apply(&interaction(&v, "s1e2", Action::Play, None), 1.0);
        }
        f.apply(&interaction("new", "s1e1", Action::Play, None), 2.0);
        let (items, basis) = f.recommendations("new", 3);
        assert_eq!(
            (items.first().map(String::as_str), basis),
            (Some("s1e2"), "co-occurrence")
        );
        let (items, basis) = f.recommendations("stranger", 2);
        assert_eq!((items.len(), basis), (2, "most-popular"));
    }

    #[test]
    fn hints_name_entry_urls_of_rising_and_recommended_items_and_cool_down() {
        let mut f = Interest::default();
        // A quiet catalog, then one item takes off.
        for t in 0..600 {
            f.apply(
                &interaction(
                    &format!("q{}", t % 50),
                    &format!("old{}", t % 40),
                    Action::Play,
                    None,
                ),
                t as f64,
            );
        }
        for k in 0..400 {
            let t = 600.0 + k as f64 * 0.05;
            f.apply(
                &interaction(&format!("fan{k}"), "premiere", Action::Play, None),
                t,
            );
            f.apply(
                &interaction(&format!("fan{k}"), "trailer", Action::Like, None),
                t,
            );
        }
        let hints = f.hints(621.0);
        let premiere = hints.iter().find(|h| h.item.as_deref() == Some("premiere"));
        assert!(
            premiere.is_some_and(|h| h.urls == ["v.test/premiere/master.m3u8"]
                && matches!(h.reason, PrewarmReason::Rising | PrewarmReason::New)),
            "{hints:?}"
        );
        // Recently active viewers who played the premiere are recommended the trailer.
        assert!(
            hints.iter().any(|h| h.item.as_deref() == Some("trailer")),
            "{hints:?}"
        );
        // Not again within the cool-downs.
        let again = f.hints(622.0);
        assert!(
            !again
                .iter()
                .any(|h| matches!(h.item.as_deref(), Some("premiere" | "trailer"))),
            "{again:?}"
        );
        // An item no interaction named a URL for is never hinted.
        let mut g = Interest::default();
        for k in 0..400 {
            let mut i = interaction(&format!("f{k}"), "nourl", Action::Play, None);
            i.url = None;
            g.apply(&i, k as f64 * 0.05);
        }
        assert!(g.hints(21.0).is_empty());
    }

    #[test]
    fn state_stays_bounded_whatever_the_stream() {
        let limits = Limits {
            history: 5,
            neighbours: 8,
            items: 1000,
            viewers: 1000,
        };
        let mut f = Interest::new(limits, ForecastConfig::default());
        f.max_urls = 2000;
        for k in 0..20_000u64 {
            // New items, and old ones named again (stale entries in the URL order).
            let item = if k % 3 == 0 {
                format!("i{}", k % 300)
            } else {
                format!("i{k}")
            };
            let i = interaction(&format!("v{}", k % 5_000), &item, Action::Play, Some("eu"));
            f.apply(&i, k as f64 * 0.001);
        }
        let (urls, active, items, viewers) = f.size();
        assert!(urls <= 2000 && active <= ACTIVE_VIEWERS, "{urls} {active}");
        assert!(items <= 1000 && viewers <= 1000, "{items} {viewers}");
        assert!(f.urls_order.len() <= 2 * 2000 + 1);
        assert!(f.trending(Some("eu"), 10_000, 200.0).len() <= TRENDING_ITEMS);
    }
}
