//! Sends a JSON document to a webhook: the audit anchor, kept outside the
//! coordinator (`slipway_common::webhook`: https, or http to this machine only,
//! since an anchor altered in transit would vouch for a rewritten log).

use std::time::Duration;

use crate::failure::{Exit, Failure};

/// How long a webhook may take to answer.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Whether `url` may receive a document.
pub fn check(url: &str) -> Result<hyper::Uri, Failure> {
    slipway_common::webhook::check(url).map_err(|e| Failure::usage(format!("--webhook {e}")))
}

/// POSTs `json` to `uri`; fails unless it answers 2xx.
pub async fn post(uri: hyper::Uri, json: String) -> Result<(), Failure> {
    slipway_common::webhook::post(&uri, &[], json.into_bytes(), TIMEOUT)
        .await
        .map_err(|why| {
            Failure::new(
                format!("the webhook {uri} {why}: the anchor was not kept"),
                Exit::Failed,
            )
        })
}
