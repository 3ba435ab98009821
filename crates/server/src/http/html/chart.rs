//! The one hits-per-day chart (manage page and console overview): bars for an inline SVG.
//! Only numbers and dates reach the template, so nothing needs escaping there.

use serde_json::{json, Value};

use crate::render::human_time;

const DAY_MS: i64 = 86_400_000;
/// Days the chart covers, ending today.
pub const DAYS: i64 = 30;
const HEIGHT: u64 = 60;

/// The first day (days since the epoch) a chart ending on `now`'s day shows.
pub fn first_day(now_millis: i64) -> i64 {
    now_millis / DAY_MS - DAYS + 1
}

/// Bars for the `DAYS` days up to `now`'s, scaled to the busiest; `counts` are (day, hits).
pub fn daily(counts: &[(i64, u64)], now_millis: i64) -> Value {
    let today = now_millis / DAY_MS;
    let first = first_day(now_millis);
    let max = counts.iter().map(|(_, n)| *n).max().unwrap_or(0);
    let bars: Vec<Value> = (first..=today)
        .enumerate()
        .map(|(i, day)| {
            let n = counts.iter().find(|(d, _)| *d == day).map_or(0, |(_, n)| *n);
            let h = if max == 0 { 0 } else { (n * HEIGHT).div_ceil(max) };
            json!({"x": i * 10, "y": HEIGHT - h, "h": h, "count": n, "day": &human_time(day * DAY_MS)[..10]})
        })
        .collect();
    json!({"bars": bars, "max": max, "height": HEIGHT, "width": DAYS * 10})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_busiest_day() {
        let now = 100 * DAY_MS + 5;
        let chart = daily(&[(100, 4), (99, 2)], now);
        let bars = chart["bars"].as_array().unwrap();
        assert_eq!(bars.len(), DAYS as usize);
        assert_eq!(bars[29]["h"], 60);
        assert_eq!(bars[28]["h"], 30);
        assert_eq!(bars[0]["h"], 0);
    }
}
