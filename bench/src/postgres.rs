//! The ledger on PostgreSQL beside SQLite, in one run: the refund path's added latency and
//! webhook ingest through a proxy on each engine, and the cross-replica fan-out (a webhook
//! into replica B → the last of 1,000 streams open on replica A, against the same webhook into
//! A itself).
//!
//! PostgreSQL is a throwaway cluster (`testkit::postgres`) with its default durability (`fsync`
//! and `synchronous_commit` on), its data under the system's temporary folder, on the same disk
//! as the SQLite files here. No goal: these rows say what choosing PostgreSQL costs.

use std::sync::Arc;
use std::time::Duration;

use signing::Scheme;

use crate::fanout;
use crate::ingest::signed_webhooks;
use crate::load::{self, Latencies};
use crate::overhead::{self, Path, OPS, RATE};
use crate::report::{self, Row};
use crate::rig::{Rig, RigOptions};
use crate::timing::percentile;

const SECTION: &str = "8. PostgreSQL ledger";
const WEBHOOKS: usize = 2000;
const CONCURRENCIES: [usize; 2] = [16, 64];
const INGEST_LIMIT: Duration = Duration::from_secs(20);
const STREAMS: usize = 1000;
const ROUNDS: usize = 30;

pub async fn measure(notes: &mut Vec<String>) -> Vec<Row> {
    let cluster = match testkit::postgres::Cluster::start() {
        Ok(cluster) => cluster,
        Err(e) => {
            return vec![Row::not_measured(
                SECTION,
                "PostgreSQL rows",
                format!("no throwaway PostgreSQL: {e}"),
                "",
            )]
        }
    };
    let mut rows = Vec::new();
    match overhead_rows(&cluster).await {
        Ok(found) => rows.extend(found),
        Err(why) => rows.push(Row::not_measured(
            SECTION,
            "refund path, added p99",
            why,
            "",
        )),
    }
    match ingest_rows(&cluster).await {
        Ok(found) => rows.extend(found),
        Err(why) => rows.push(Row::not_measured(SECTION, "webhook ingest", why, "")),
    }
    match fanout_rows(&cluster).await {
        Ok(found) => rows.extend(found),
        Err(why) => rows.push(Row::not_measured(SECTION, "cross-replica fan-out", why, "")),
    }
    notes.push(
        "PostgreSQL rows: every write transaction takes one advisory lock (writes one at a \
         time across replicas, as SQLite's single writer does in one process), a refund also \
         holds its payment's advisory lock on a connection of its own, and each commit with \
         events sends a NOTIFY and is answered once this replica's listener has loaded and \
         published those events. So a refund costs more round trips to another process than on \
         SQLite (the payment lock and its release, the writers' lock twice, the NOTIFY, the \
         listener's query), each a context switch on the same 2 cores as the load; that is the \
         added latency over SQLite. Ingest runs every statement of a batch in turn on one \
         connection (about four per webhook of two refunds): at first the look-up of a refund's \
         row and candidate attempts was one `OR` that PostgreSQL, without statistics on a young \
         table, planned as a scan of the whole table, and ingest fell from 474 to 200 req/s \
         between 16 and 64 concurrent as the table grew; as a `UNION ALL` of two index \
         look-ups it is 822 and 1,093 req/s in the run that found it, 0.6 of SQLite's. \
         CI: the API suite's second run on PostgreSQL is a stage of its own (96 s in a \
         fresh-clone CI run on 2 cores, 24 s of it the tests) and tests/replicas takes about \
         25 s of the native tests; the whole CI run took 1,368 s. `cargo xtask test` prints \
         each stage's time."
            .to_owned(),
    );
    rows
}

fn database(cluster: &testkit::postgres::Cluster) -> Result<String, String> {
    cluster
        .fresh_database()
        .map_err(|e| format!("cannot create a database: {e}"))
}

async fn rig(database: Option<String>) -> Result<Arc<Rig>, String> {
    let options = RigOptions {
        database,
        ..RigOptions::default()
    };
    Ok(Arc::new(Rig::start(Scheme::HmacSha256, options).await?))
}

/// Direct, then through a SQLite proxy, then through a PostgreSQL one: added p50 and p99.
async fn overhead_rows(cluster: &testkit::postgres::Cluster) -> Result<Vec<Row>, String> {
    let sqlite = rig(None).await?;
    let postgres = rig(Some(database(cluster)?)).await?;
    let none = Arc::new(None);
    for rig in [&sqlite, &postgres] {
        let warm = rig.payments(50).await;
        overhead::run(rig, &none, Path::Proxy, warm, 100).await;
    }
    // Interleaved as in the overhead section (`load::round_order`).
    let (mut direct, mut on_sqlite, mut on_postgres) =
        <(Latencies, Latencies, Latencies)>::default();
    for round in 0..overhead::INTERLEAVED_ROUNDS {
        for which in load::round_order(round, 3) {
            let (rig, path, pass) = match which {
                0 => (&sqlite, Path::Direct, &mut direct),
                1 => (&sqlite, Path::Proxy, &mut on_sqlite),
                _ => (&postgres, Path::Proxy, &mut on_postgres),
            };
            let payments = rig.payments(overhead::SLICE / 2).await;
            pass.absorb(overhead::run(rig, &none, path, payments, overhead::SLICE).await);
        }
    }
    for (name, pass) in [
        ("direct", &direct),
        ("SQLite proxy", &on_sqlite),
        ("PostgreSQL proxy", &on_postgres),
    ] {
        if pass.failed > 0 {
            return Err(format!(
                "{} {name} requests failed, first: {}",
                pass.failed,
                pass.first_error.as_deref().unwrap_or("?")
            ));
        }
    }
    let q = |pass: &mut Latencies, at: f64| percentile(&mut pass.ok, at);
    let mut rows = Vec::new();
    for (label, at) in [("p50", 50.0), ("p99", 99.0)] {
        let d = q(&mut direct, at);
        let s = q(&mut on_sqlite, at);
        let p = q(&mut on_postgres, at);
        rows.push(
            Row::plain(
                SECTION,
                format!(
                    "refund path added {label}, PostgreSQL ledger, HMAC, {OPS} req at {RATE:.0}/s"
                ),
                report::delta(d, p),
            )
            .baseline(format!(
                "SQLite ledger in the same run: {} (direct {}, SQLite {}, PostgreSQL {})",
                report::delta(d, s),
                report::duration(d),
                report::duration(s),
                report::duration(p)
            )),
        );
    }
    Ok(rows)
}

/// Distinct signed webhooks into a SQLite proxy, then into a PostgreSQL one.
async fn ingest_rows(cluster: &testkit::postgres::Cluster) -> Result<Vec<Row>, String> {
    let sqlite = rig(None).await?;
    let postgres = rig(Some(database(cluster)?)).await?;
    let total = 100 + CONCURRENCIES.len() * WEBHOOKS;
    let bodies = Arc::new(signed_webhooks(&sqlite, total));
    let send = |rig: &Arc<Rig>, offset: usize| {
        crate::ingest::sender(&rig.http, &bodies, rig.proxy.url.clone(), offset)
    };
    for rig in [&sqlite, &postgres] {
        load::closed_loop(100, 16, INGEST_LIMIT, send(rig, 0)).await;
    }
    let mut rows = Vec::new();
    for (n, concurrency) in CONCURRENCIES.into_iter().enumerate() {
        let offset = 100 + n * WEBHOOKS;
        let on_sqlite =
            load::closed_loop(WEBHOOKS, concurrency, INGEST_LIMIT, send(&sqlite, offset)).await;
        let on_postgres =
            load::closed_loop(WEBHOOKS, concurrency, INGEST_LIMIT, send(&postgres, offset)).await;
        for (name, run) in [("SQLite", &on_sqlite), ("PostgreSQL", &on_postgres)] {
            if run.failed > 0 {
                return Err(format!(
                    "{} webhooks into the {name} proxy failed at {concurrency} concurrent, first: {}",
                    run.failed,
                    run.first_error.as_deref().unwrap_or("?")
                ));
            }
        }
        let (s, p) = (on_sqlite.per_second(), on_postgres.per_second());
        rows.push(
            Row::plain(
                SECTION,
                format!("webhook ingest, PostgreSQL ledger, HMAC, {WEBHOOKS} webhooks, {concurrency} concurrent"),
                format!("{p:.0} req/s"),
            )
            .baseline(format!(
                "SQLite ledger in the same run: {s:.0} req/s ({:.2}×)",
                p / s.max(1e-9)
            )),
        );
    }
    Ok(rows)
}

/// 1,000 streams on replica A; webhooks into A, then into B; the time to the last stream.
async fn fanout_rows(cluster: &testkit::postgres::Cluster) -> Result<Vec<Row>, String> {
    let rig = rig(Some(database(cluster)?)).await?;
    let b = rig.another_proxy("replica-b").await?;
    let session = rig.payments(1).await.remove(0);
    fanout::send_webhook(&rig, &session, 0).await?;
    let streams = fanout::open_streams(&rig, &session, STREAMS).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut figures = Vec::new();
    for (first_round, base) in [(1, rig.proxy.url.clone()), (1 + ROUNDS, b.url.clone())] {
        let rounds = first_round..=first_round + ROUNDS - 1;
        let mut lasts = fanout::time_rounds(&rig, &base, &session, rounds, &streams).await?;
        figures.push((percentile(&mut lasts, 50.0), percentile(&mut lasts, 99.0)));
    }
    drop(streams);
    let [(same50, same99), (cross50, cross99)] = figures[..] else {
        return Err("two series of rounds".into());
    };
    Ok(vec![Row::plain(
        SECTION,
        format!("webhook into replica B → last of {STREAMS} streams on replica A, p99 ({ROUNDS} webhooks)"),
        report::duration(cross99),
    )
    .baseline(format!(
        "p50 {}; the webhook into A itself: p50 {}, p99 {}",
        report::duration(cross50),
        report::duration(same50),
        report::duration(same99)
    ))])
}
