//! Cooldown windows over SQL: one `alert_windows` row per token with hits gathered. A commit
//! folds its hits into the rows (one read and one multi-row `UPDATE` for all its tokens);
//! closing a window reads the row and deletes it with a conditional `DELETE` whose row count
//! decides which replica plans the summary.

use std::collections::BTreeMap;

use canarykeys_core::{ids, TokenId};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::batch::values;
use super::outbox::{insert_deliveries, set_cooldown};
use super::{hit_from_row, Backend, SqlStore, HIT_COLUMNS};
use crate::{Distinct, Folded, NewDelivery, Result, StoreError, Tally, WindowHit, WindowSummary};

const WINDOW_COLUMNS: &str = "w.token_id, w.id, w.opened_at, w.closes_at, w.hits, \
     w.first_event_time, w.last_event_time, w.last_hit_id, w.addresses, w.other_addresses, \
     w.events, w.other_events, w.folded, w.folded_first, w.folded_last, w.folded_addresses, \
     w.folded_agents, w.folded_events";

fn window_from_row(row: &AnyRow) -> Result<WindowSummary> {
    let hits: i64 = row.try_get("hits")?;
    Ok(WindowSummary {
        token_id: TokenId::parse(&row.try_get::<String, _>("token_id")?)
            .map_err(|e| StoreError::Corrupt(format!("token_id: {e}")))?,
        id: row.try_get("id")?,
        opened_at: row.try_get("opened_at")?,
        closes_at: row.try_get("closes_at")?,
        hits: u64::try_from(hits).unwrap_or(0),
        first_event_time: row.try_get("first_event_time")?,
        last_event_time: row.try_get("last_event_time")?,
        last_hit_id: row.try_get("last_hit_id")?,
        addresses: Distinct::decode(
            &row.try_get::<String, _>("addresses")?,
            row.try_get("other_addresses")?,
        ),
        events: Distinct::decode(
            &row.try_get::<String, _>("events")?,
            row.try_get("other_events")?,
        ),
        last_hit: None,
        folded: Folded {
            count: u64::try_from(row.try_get::<i64, _>("folded")?).unwrap_or(0),
            first_event_time: row.try_get("folded_first")?,
            last_event_time: row.try_get("folded_last")?,
            addresses: Tally::decode(&row.try_get::<String, _>("folded_addresses")?),
            agents: Tally::decode(&row.try_get::<String, _>("folded_agents")?),
            events: Tally::decode(&row.try_get::<String, _>("folded_events")?),
        },
    })
}

pub(super) fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The most tokens one statement of `gather` takes (each costs 9 parameters in the `UPDATE`).
pub(super) const GATHER_CHUNK: usize = 64;

/// The distinct values of the open windows of `n` tokens (bound in id order), locked on
/// PostgreSQL in that order.
pub(super) fn read_sql(n: usize, backend: Backend) -> String {
    format!(
        "SELECT token_id, addresses, other_addresses, events, other_events \
         FROM alert_windows WHERE token_id IN {} ORDER BY token_id{}",
        values(1, n, backend),
        if backend == Backend::Postgres {
            " FOR UPDATE"
        } else {
            ""
        }
    )
}

/// Adds `n` `WindowUpdate`s to their windows in one statement.
pub(super) fn update_sql(n: usize, backend: Backend) -> String {
    // token, hits, earliest, latest, last hit id, addresses, others, events, others
    let ints = [false, true, true, true, false, false, true, false, true];
    let rows = super::batch::typed_values(n, &ints, backend);
    format!(
        "UPDATE alert_windows SET hits = hits + v.column2, \
         first_event_time = CASE WHEN first_event_time < v.column3 \
             THEN first_event_time ELSE v.column3 END, \
         last_event_time = CASE WHEN last_event_time > v.column4 \
             THEN last_event_time ELSE v.column4 END, \
         last_hit_id = v.column5, \
         closes_at = (SELECT cooldown_until FROM tokens WHERE id = v.column1), \
         addresses = v.column6, other_addresses = v.column7, \
         events = v.column8, other_events = v.column9 \
         FROM (VALUES {rows}) AS v WHERE alert_windows.token_id = v.column1"
    )
}

/// What a group adds to one open window: one row of `update_sql`, in its order.
pub(super) struct WindowUpdate<'a> {
    pub token: &'a str,
    pub hits: i64,
    pub earliest: i64,
    pub latest: i64,
    pub last_hit: &'a str,
    pub addresses: String,
    pub other_addresses: i64,
    pub events: String,
    pub other_events: i64,
}

impl<'a> WindowUpdate<'a> {
    /// `hits` merged into a window whose stored distinct values are `addresses` and `events`.
    pub(super) fn merge(
        token: &'a str,
        hits: &'a [WindowHit],
        mut addresses: Distinct,
        mut events: Distinct,
    ) -> Self {
        add_distinct(hits, &mut addresses, &mut events);
        let (earliest, latest) = span(hits);
        Self {
            token,
            hits: count(hits.len() as u64),
            earliest,
            latest,
            last_hit: hits.last().map(|h| h.hit_id.as_str()).unwrap_or_default(),
            addresses: addresses.encode(),
            other_addresses: count(addresses.others),
            events: events.encode(),
            other_events: count(events.others),
        }
    }
}

/// Gathers hits into their tokens' windows, tokens in id order (so two commits lock rows in the
/// same order). The windows that exist are read in one statement per 64 tokens (locked on
/// PostgreSQL), merged here, and written back in one multi-row `UPDATE … FROM (VALUES …)`: two
/// statements for a group of many tokens, where one `UPDATE` per token made the group's cost
/// grow with its tokens (each statement is a round trip to sqlx's SQLite thread). A window that
/// does not exist yet goes through `gather_one`.
pub(super) async fn gather(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    hits: BTreeMap<&str, Vec<WindowHit>>,
) -> Result<()> {
    let tokens: Vec<(&str, Vec<WindowHit>)> =
        hits.into_iter().filter(|(_, h)| !h.is_empty()).collect();
    for chunk in tokens.chunks(GATHER_CHUNK) {
        let mut open = read_open(tx, backend, chunk).await?;
        let mut updates = Vec::new();
        for (token, hits) in chunk {
            match open.remove(*token) {
                Some((addresses, events)) => {
                    updates.push(WindowUpdate::merge(token, hits, addresses, events));
                }
                None => gather_one(tx, backend, token, hits).await?,
            }
        }
        if updates.is_empty() {
            continue;
        }
        let sql = update_sql(updates.len(), backend);
        let mut q = sqlx::query(&sql);
        for u in &updates {
            q = q
                .bind(u.token)
                .bind(u.hits)
                .bind(u.earliest)
                .bind(u.latest)
                .bind(u.last_hit)
                .bind(&u.addresses)
                .bind(u.other_addresses)
                .bind(&u.events)
                .bind(u.other_events);
        }
        let done = q.execute(&mut **tx).await?.rows_affected();
        if usize::try_from(done).ok() != Some(updates.len()) {
            // The rows were read (and on PostgreSQL locked) in this transaction: never counted
            // silently short; the whole commit fails and its requests with it.
            return Err(StoreError::Corrupt(
                "a cooldown window changed under its lock".to_owned(),
            ));
        }
    }
    Ok(())
}

/// The distinct values of open windows, by token: what `gather` merges a group's hits into.
pub(super) type OpenWindows = BTreeMap<String, (Distinct, Distinct)>;

/// The open windows of `chunk`'s tokens, read in one statement (locked on PostgreSQL).
async fn read_open(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    chunk: &[(&str, Vec<WindowHit>)],
) -> Result<OpenWindows> {
    let sql = read_sql(chunk.len(), backend);
    let mut q = sqlx::query(&sql);
    for (token, _) in chunk {
        q = q.bind(*token);
    }
    let mut open = OpenWindows::new();
    for row in q.fetch_all(&mut **tx).await? {
        open.insert(row.try_get("token_id")?, distinct_values(&row)?);
    }
    Ok(open)
}

/// A row's distinct addresses and event names, as `read_sql` (and the PostgreSQL group's
/// first statement) name them.
pub(super) fn distinct_values(row: &AnyRow) -> Result<(Distinct, Distinct)> {
    let addresses = Distinct::decode(
        &row.try_get::<String, _>("addresses")?,
        row.try_get("other_addresses")?,
    );
    let events = Distinct::decode(
        &row.try_get::<String, _>("events")?,
        row.try_get("other_events")?,
    );
    Ok((addresses, events))
}

/// Adds `hits`' addresses and event names to a window's distinct values.
pub(super) fn add_distinct(hits: &[WindowHit], addresses: &mut Distinct, events: &mut Distinct) {
    for h in hits {
        addresses.add(&h.source_ip);
        events.add(&h.event_name);
    }
}

/// Writes windows' distinct values (token, addresses, events), each row locked already by this
/// transaction; fails rather than leave one unwritten.
pub(super) async fn write_distinct(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    windows: &[(&str, Distinct, Distinct)],
) -> Result<()> {
    // token, addresses, others, events, others
    let ints = [false, false, true, false, true];
    let sql = format!(
        "UPDATE alert_windows SET addresses = v.column2, other_addresses = v.column3, \
         events = v.column4, other_events = v.column5 \
         FROM (VALUES {}) AS v WHERE alert_windows.token_id = v.column1",
        super::batch::typed_values(windows.len(), &ints, backend)
    );
    let mut q = sqlx::query(&sql);
    for (token, addresses, events) in windows {
        q = q
            .bind(*token)
            .bind(addresses.encode())
            .bind(count(addresses.others))
            .bind(events.encode())
            .bind(count(events.others));
    }
    let done = q.execute(&mut **tx).await?.rows_affected();
    if usize::try_from(done).ok() != Some(windows.len()) {
        return Err(StoreError::Corrupt(
            "a cooldown window changed under its lock".to_owned(),
        ));
    }
    Ok(())
}

/// The earliest and latest event times of `hits`.
fn span(hits: &[WindowHit]) -> (i64, i64) {
    let earliest = hits.iter().map(|h| h.event_time).min().unwrap_or(0);
    let latest = hits.iter().map(|h| h.event_time).max().unwrap_or(0);
    (earliest, latest)
}

/// One token's hits into its window, which had no row when `gather` read: inserted, or, when
/// another replica's commit created it meanwhile, updated. One `UPDATE … RETURNING` adds the
/// count and span and locks the row; the distinct values it returns are written back only when
/// the hits add to them.
pub(super) async fn gather_one(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    token: &str,
    hits: &[WindowHit],
) -> Result<()> {
    let (Some(first), Some(last)) = (hits.first(), hits.last()) else {
        return Ok(());
    };
    let (earliest, latest) = span(hits);
    // Twice at most: a window another commit created since our UPDATE found none is
    // updated on the second pass.
    for _ in 0..2 {
        let row = sqlx::query(
            "UPDATE alert_windows SET hits = hits + $2, \
             first_event_time = CASE WHEN first_event_time < $3 THEN first_event_time ELSE $3 END, \
             last_event_time = CASE WHEN last_event_time > $4 THEN last_event_time ELSE $4 END, \
             last_hit_id = $5, closes_at = (SELECT cooldown_until FROM tokens WHERE id = $1) \
             WHERE token_id = $1 \
             RETURNING addresses, other_addresses, events, other_events",
        )
        .bind(token)
        .bind(count(hits.len() as u64))
        .bind(earliest)
        .bind(latest)
        .bind(&last.hit_id)
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(row) = row {
            let (mut addresses, mut events) = distinct_values(&row)?;
            let before = (addresses.clone(), events.clone());
            add_distinct(hits, &mut addresses, &mut events);
            if before != (addresses.clone(), events.clone()) {
                write_distinct(tx, backend, &[(token, addresses, events)]).await?;
            }
            return Ok(());
        }
        let id =
            TokenId::parse(token).map_err(|e| StoreError::Corrupt(format!("token_id: {e}")))?;
        let mut window = WindowSummary::starting(id, ids::random_id(), first);
        for h in &hits[1..] {
            window.gather(h);
        }
        if insert(tx, &window).await? {
            return Ok(());
        }
    }
    // Never counted silently short: the whole commit fails and its requests with it.
    Err(StoreError::Corrupt(format!(
        "the cooldown window of token {token} changed under its lock"
    )))
}

/// Inserts a new window; false when another commit created it first.
async fn insert(tx: &mut Transaction<'_, Any>, w: &WindowSummary) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO alert_windows (token_id, id, hits, first_event_time, last_event_time, \
         last_hit_id, addresses, other_addresses, events, other_events, opened_at, closes_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
         (SELECT cooldown_until FROM tokens WHERE id = $1)) ON CONFLICT (token_id) DO NOTHING",
    )
    .bind(w.token_id.as_str())
    .bind(&w.id)
    .bind(count(w.hits))
    .bind(w.first_event_time)
    .bind(w.last_event_time)
    .bind(&w.last_hit_id)
    .bind(w.addresses.encode())
    .bind(count(w.addresses.others))
    .bind(w.events.encode())
    .bind(count(w.events.others))
    .bind(w.opened_at)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

impl SqlStore {
    /// See `OutboxStore::closed_windows`.
    pub(crate) async fn closed_windows_sql(&self, now: i64) -> Result<Vec<WindowSummary>> {
        // A deleted token's window closes at once: nothing will reopen it.
        let sql = format!(
            "SELECT {WINDOW_COLUMNS} FROM alert_windows w LEFT JOIN tokens t ON t.id = w.token_id \
             WHERE t.id IS NULL OR t.cooldown_until IS NULL OR t.cooldown_until <= $1 \
             ORDER BY w.opened_at"
        );
        let rows = sqlx::query(&sql).bind(now).fetch_all(&self.pool).await?;
        let mut windows = Vec::with_capacity(rows.len());
        let last = format!("SELECT {HIT_COLUMNS} FROM hits WHERE id = $1");
        for row in &rows {
            let mut w = window_from_row(row)?;
            w.last_hit = match sqlx::query(&last)
                .bind(&w.last_hit_id)
                .fetch_optional(&self.pool)
                .await?
            {
                Some(row) => Some(hit_from_row(&row)?),
                None => None,
            };
            windows.push(w);
        }
        Ok(windows)
    }

    /// See `OutboxStore::plan_summary`.
    pub(crate) async fn plan_summary_sql(
        &self,
        w: &WindowSummary,
        deliveries: &[NewDelivery],
        cooldown_until: Option<i64>,
    ) -> Result<bool> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        // The token's row before the window's, as planning takes them: no lock-order deadlock.
        set_cooldown(&mut tx, &w.token_id, cooldown_until).await?;
        let claimed = sqlx::query(
            "DELETE FROM alert_windows WHERE token_id = $1 AND id = $2 AND hits = $3 \
             AND folded = $4",
        )
        .bind(w.token_id.as_str())
        .bind(&w.id)
        .bind(count(w.hits))
        .bind(count(w.folded.count))
        .execute(&mut *tx)
        .await?;
        // Another replica summarized it (on PostgreSQL our DELETE waited for its commit and
        // found the row gone), or a late hit joined it: the next round reads it afresh.
        if claimed.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_deliveries(&mut tx, deliveries).await?;
        tx.commit().await?;
        Ok(true)
    }
}
