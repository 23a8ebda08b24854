//! `GET /ring`: the ring in use, like dskit's ring page (docs/ring.md §5): every member with
//! its state, health, zone, token count, share of the token space and heartbeat age; an
//! HTML table by default, JSON for `Accept: application/json`.

use std::fmt::Write as _;
use std::time::SystemTime;

use super::membership::Membership;
use crate::http::Response;

/// The ring page.
pub fn render(m: &Membership, want_json: bool) -> Response {
    let state = m.current();
    let ring = &state.ring;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let ownership = ring.ownership();
    let updated = state
        .updated_at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let store_error = m.store_error.lock().ok().and_then(|g| g.clone());
    struct Row<'a> {
        id: &'a str,
        addr: &'a str,
        zone: &'a str,
        state: &'static str,
        healthy: bool,
        tokens: usize,
        ownership: f64,
        heartbeat_age: Option<i64>,
    }
    let rows: Vec<Row> = ring
        .members
        .iter()
        .enumerate()
        .map(|(i, mm)| Row {
            id: &mm.id,
            addr: &mm.url,
            zone: &mm.zone,
            state: mm.state.name(),
            healthy: ring.healthy(mm, &m.placement, now),
            tokens: mm.tokens.len(),
            ownership: ownership.get(i).copied().unwrap_or(0.0) * 100.0,
            heartbeat_age: (mm.heartbeat > 0).then(|| now - mm.heartbeat),
        })
        .collect();
    if want_json {
        let mut out = String::from("{");
        let _ = write!(
            out,
            "\"source\":\"{}\",\"generation\":{},\"updated\":{updated},\"replication_factor\":{},\"zone_awareness\":{},\"store_error\":{},\"members\":[",
            state.source,
            state.generation,
            m.placement.replication_factor,
            m.placement.zone_awareness,
            store_error.as_deref().map_or("null".into(), json_string),
        );
        for (i, r) in rows.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(
                out,
                "{{\"id\":{},\"addr\":{},\"zone\":{},\"state\":\"{}\",\"healthy\":{},\"tokens\":{},\"ownership_percent\":{:.3},\"heartbeat_age_seconds\":{}}}",
                json_string(r.id),
                json_string(r.addr),
                json_string(r.zone),
                r.state,
                r.healthy,
                r.tokens,
                r.ownership,
                r.heartbeat_age.map_or("null".into(), |a| a.to_string()),
            );
        }
        out.push_str("]}\n");
        return Response::json(200, out);
    }
    let mut html = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>pyrogate ring</title></head><body>\n<h1>Ring</h1>\n",
    );
    let _ = writeln!(
        html,
        "<p>source: {} · generation {} · replication factor {} · zone awareness {}{}</p>",
        state.source,
        state.generation,
        m.placement.replication_factor,
        m.placement.zone_awareness,
        store_error
            .as_deref()
            .map(|e| format!(" · <b>store unreachable, last ring kept</b>: {}", escape(e)))
            .unwrap_or_default()
    );
    html.push_str("<table border=\"1\" cellpadding=\"4\">\n<tr><th>ID</th><th>Address</th><th>Zone</th><th>State</th><th>Healthy</th><th>Tokens</th><th>Ownership</th><th>Last heartbeat</th></tr>\n");
    for r in &rows {
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}%</td><td>{}</td></tr>",
            escape(r.id),
            escape(r.addr),
            escape(r.zone),
            r.state,
            if r.healthy { "yes" } else { "no" },
            r.tokens,
            r.ownership,
            r.heartbeat_age
                .map_or_else(|| "-".to_string(), |a| format!("{a} s ago")),
        );
    }
    html.push_str("</table>\n</body></html>\n");
    Response::new(200)
        .header("Content-Type", "text/html; charset=utf-8")
        .body(html)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn json_string(s: &str) -> String {
    let mut out = Vec::new();
    crate::protocol::connect::push_json_string(&mut out, s);
    String::from_utf8_lossy(&out).into_owned()
}
