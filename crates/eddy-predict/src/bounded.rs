//! The two moves every bounded table here makes: drop the entry that matters least, and count
//! into a full table the Space-Saving way.

use std::collections::HashMap;
use std::hash::Hash;

/// Remove and return the entry of `map` with the smallest `rank` (ties: any).
pub(crate) fn remove_min_by<K, V, R>(map: &mut HashMap<K, V>, rank: impl Fn(&V) -> R) -> Option<V>
where
    K: Clone + Eq + Hash,
    R: PartialOrd,
{
    let key = map
        .iter()
        .min_by(|a, b| {
            rank(a.1)
                .partial_cmp(&rank(b.1))
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .map(|(k, _)| k.clone())?;
    map.remove(&key)
}

/// Add `weight` to `key`'s count in `counts`, which holds at most `capacity` keys: a new key in
/// a full table replaces the lowest count and inherits it (Space-Saving: heavy keys are never
/// lost; a light key is over-counted by at most the minimum).
pub(crate) fn space_saving_add<K>(
    counts: &mut HashMap<K, f64>,
    capacity: usize,
    key: K,
    weight: f64,
) where
    K: Clone + Eq + Hash,
{
    if let Some(c) = counts.get_mut(&key) {
        *c += weight;
        return;
    }
    let inherited = if counts.len() >= capacity.max(1) {
        remove_min_by(counts, |c| *c).unwrap_or(0.0)
    } else {
        0.0
    };
    counts.insert(key, inherited + weight);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_saving_keeps_the_heavy_key_and_the_bound() {
        let mut m = HashMap::new();
        for i in 0..1000u32 {
            space_saving_add(&mut m, 4, 0u32, 1.0);
            space_saving_add(&mut m, 4, 1 + i, 1.0);
        }
        assert!(m.len() <= 4);
        assert_eq!(m.get(&0), Some(&1000.0));
        assert_eq!(remove_min_by(&mut HashMap::<u8, f64>::new(), |v| *v), None);
    }
}
