//! Alerts (`[notify]`): after every pass that writes (a `sync`, each daemon job), what the pass
//! says about each condition is weighed against what the state remembers of it, and what is due
//! goes to the webhook and/or the command. The rules are in [`condition`]; the words in
//! [`message`]; the hand-over in [`deliver`].
//!
//! An alert never changes how a pass ends: a target that fails or times out is a warning naming
//! it (the webhook by host only: its URL is a secret), and the alert is due again at the next
//! pass. A dry run sends nothing and changes nothing.

pub mod condition;
pub mod deliver;
pub mod message;

use std::sync::Mutex;

use chrono::{DateTime, Utc};

use crate::config::{Config, NotifyConfig};
use crate::store::{AlertState, Store};
use condition::{Alert, Condition, Decision, PassEnd, decide, observe};
use message::{Message, RunRef, compose};

/// Weighs a finished pass (run `run_id`, not a dry run) and sends what is due. Never fails: a
/// problem with the state or a target is logged.
pub async fn pass_ended(cfg: &Config, store: &Mutex<Store>, run_id: i64, end: &PassEnd) {
    let Some(notify) = &cfg.notify else {
        return;
    };
    let now = Utc::now();
    let decisions = match decide_all(store, end, now) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "alerts: cannot read the alert state; no alert this pass");
            return;
        }
    };
    let alerts: Vec<(Condition, Alert)> = decisions
        .iter()
        .filter_map(|(c, d)| Some((c.clone(), d.alert.clone()?)))
        .collect();
    let delivered = if alerts.is_empty() {
        false
    } else {
        let run = RunRef {
            location_id: &cfg.ghl.location_id,
            run_id,
            status: end.status,
            scope: &end.scope,
        };
        send(notify, &compose(&run, &alerts, now)).await
    };
    let s = store.lock().unwrap_or_else(|p| p.into_inner());
    for (condition, d) in &decisions {
        let state = if delivered { d.sent } else { d.kept };
        if let Err(e) = s.set_alert_state(&condition.key(), state, now) {
            tracing::warn!(condition = %condition.key(), error = %e, "alerts: cannot store the alert state");
        }
    }
}

fn decide_all(
    store: &Mutex<Store>,
    end: &PassEnd,
    now: DateTime<Utc>,
) -> crate::store::Result<Vec<(Condition, Decision)>> {
    let s = store.lock().unwrap_or_else(|p| p.into_inner());
    observe(end)
        .into_iter()
        .map(|(condition, seen)| {
            let state: AlertState = s.alert_state(&condition.key())?;
            Ok((condition, decide(state, &seen, now)))
        })
        .collect()
}

/// Hands `message` to every target at once; true when at least one took it.
async fn send(notify: &NotifyConfig, message: &Message) -> bool {
    let webhook = async {
        match &notify.webhook_url {
            Some(url) => Some(deliver::webhook(url, message, notify.timeout).await),
            None => None,
        }
    };
    let command = async {
        match &notify.command {
            Some(argv) => Some(deliver::command(argv, message, notify.timeout).await),
            None => None,
        }
    };
    let (w, c) = tokio::join!(webhook, command);
    let conditions = message
        .env
        .iter()
        .find(|(k, _)| *k == "HGS_ALERT_CONDITIONS")
        .map(|(_, v)| v.as_str())
        .unwrap_or_default();
    let mut delivered = false;
    for (target, result) in [w, c].into_iter().flatten() {
        match result {
            Ok(()) => {
                delivered = true;
                tracing::info!(to = %target, alerts = conditions, "alert sent");
            }
            Err(e) => tracing::warn!(
                to = %target,
                alerts = conditions,
                error = %e,
                "alert not delivered; the run goes on"
            ),
        }
    }
    delivered
}

/// Tells the error a pass ended with: an API refusing the credentials or a scope (the same
/// errors `sync` exits 2 for), the quota reserve, or anything else. The text is the error's,
/// on one line, with emails and phone numbers masked: alerts leave for a chat room.
pub fn classify_error(err: &anyhow::Error) -> condition::PassError {
    use crate::ghl::GhlError;
    use crate::http::{ErrorClass, HttpError};
    use condition::PassError;
    let text = crate::privacy::mask_text(&format!("{err:#}"), &[]).replace('\n', " ");
    for cause in err.chain() {
        if let Some(g) = cause.downcast_ref::<GhlError>() {
            if g.is_quota_reserve() {
                return PassError::QuotaReserve(text);
            }
            if g.class() == Some(ErrorClass::Auth) {
                return PassError::Auth(text);
            }
        }
        match cause.downcast_ref::<HttpError>() {
            Some(HttpError::QuotaReserveReached { .. }) => return PassError::QuotaReserve(text),
            Some(HttpError::Api(e)) if e.class == ErrorClass::Auth => {
                return PassError::Auth(text);
            }
            _ => {}
        }
    }
    PassError::Other(text)
}
