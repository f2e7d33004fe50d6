//! The fleet in force, and the ones deployments started with.
//!
//! Every fleet the coordinator takes, from the file it starts with or from
//! `slipway fleet apply`, is stored with a generation (1, 2, ...). A deployment
//! records the generation it started with and keeps it to its end, across
//! restarts: a fleet applied meanwhile is for the next deployment.
//!
//! Which fleet a start takes: the newest stored one if the start file is the
//! one it was taken over (an apply since is still in force), else the start
//! file (the operator edited it: the newest word is theirs).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::clock::{Clock, Millis};
use crate::config::{ConfigError, Fleet};
use crate::events::{Event, Events};
use crate::store::{Changes, Db, Range, Record, StoreError, Table};

/// A fleet file as stored: its text, which generation it is, and whence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TakenFleet {
    pub generation: u64,
    pub text: String,
    /// SHA-256 of the file the coordinator had started with when it took this.
    pub start_file: String,
    /// `start file` or the operator who applied it.
    pub by: String,
    pub at: Millis,
}

impl Record for TakenFleet {
    const TABLE: Table = Table::Fleets;
    fn key(&self) -> String {
        // Zero-padded: keys sort as generations do.
        format!("{:020}", self.generation)
    }
}

/// A fleet and its generation.
#[derive(Debug, Clone)]
pub struct Generation {
    pub number: u64,
    pub fleet: Arc<Fleet>,
}

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The file is not a fleet file, or asks for what needs a restart.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ConfigError> for FleetError {
    fn from(e: ConfigError) -> FleetError {
        FleetError::Invalid(e.to_string())
    }
}

pub struct Fleets {
    db: Db,
    clock: Arc<dyn Clock>,
    events: Arc<Events>,
    /// SHA-256 of the start file.
    start_file: String,
    current: RwLock<Generation>,
    /// Earlier generations deployments still use, parsed once.
    earlier: Mutex<BTreeMap<u64, Arc<Fleet>>>,
    /// One apply at a time, so two never take the same generation.
    applying: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Fleets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fleets")
    }
}

fn sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

impl Fleets {
    /// Takes the fleet in force at a start: the start file (`text`, already
    /// parsed as `start`), or a fleet applied over that same file since.
    pub async fn open(
        db: Db,
        clock: Arc<dyn Clock>,
        events: Arc<Events>,
        start: Fleet,
        text: &str,
    ) -> Result<Fleets, StoreError> {
        let start_file = sha256(text);
        let newest = db
            .range::<TakenFleet>(Range::all().newest_first().limit(1))
            .await?
            .pop();
        let current = match newest {
            Some(taken) if taken.start_file == start_file => {
                match Fleet::parse(
                    &taken.text,
                    &format!("fleet generation {}", taken.generation),
                ) {
                    Ok(fleet) => {
                        if taken.by != "start file" {
                            info!(
                                generation = taken.generation,
                                by = %taken.by,
                                "the start file is unchanged since a fleet was applied: that one stays in force"
                            );
                        }
                        Generation {
                            number: taken.generation,
                            fleet: Arc::new(fleet),
                        }
                    }
                    // Written by another version of Slipway, say: the start
                    // file still parses, so take it rather than stop.
                    Err(e) => {
                        warn!(error = %e, "the stored fleet no longer parses: taking the start file");
                        Self::take(
                            &db,
                            clock.as_ref(),
                            taken.generation + 1,
                            start,
                            text,
                            &start_file,
                        )
                        .await?
                    }
                }
            }
            newest => {
                let number = newest.map_or(1, |t| t.generation + 1);
                Self::take(&db, clock.as_ref(), number, start, text, &start_file).await?
            }
        };
        info!(generation = current.number, "fleet in force");
        Ok(Fleets::with(db, clock, events, start_file, current))
    }

    /// A standby's view, which writes nothing: the newest fleet stored (the
    /// leader's), or the start file while none is. `reload` keeps it current.
    pub async fn follow(
        db: Db,
        clock: Arc<dyn Clock>,
        events: Arc<Events>,
        start: Fleet,
        text: &str,
    ) -> Result<Fleets, StoreError> {
        let start = Generation {
            number: 0,
            fleet: Arc::new(start),
        };
        let fleets = Fleets::with(db, clock, events, sha256(text), start);
        fleets.reload().await?;
        Ok(fleets)
    }

    /// Takes the newest stored generation if it is newer than the one in
    /// force: how a standby follows the leader's applies.
    pub async fn reload(&self) -> Result<(), StoreError> {
        let newest = self
            .db
            .range::<TakenFleet>(Range::all().newest_first().limit(1))
            .await?
            .pop();
        let Some(taken) = newest.filter(|t| t.generation > self.current().number) else {
            return Ok(());
        };
        match Fleet::parse(
            &taken.text,
            &format!("fleet generation {}", taken.generation),
        ) {
            Ok(fleet) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Generation {
                    number: taken.generation,
                    fleet: Arc::new(fleet),
                };
            }
            Err(e) => {
                warn!(generation = taken.generation, error = %e, "the stored fleet does not parse here; keeping the one in force")
            }
        }
        Ok(())
    }

    fn with(
        db: Db,
        clock: Arc<dyn Clock>,
        events: Arc<Events>,
        start_file: String,
        current: Generation,
    ) -> Fleets {
        Fleets {
            db,
            clock,
            events,
            start_file,
            current: RwLock::new(current),
            earlier: Mutex::new(BTreeMap::new()),
            applying: tokio::sync::Mutex::new(()),
        }
    }

    async fn take(
        db: &Db,
        clock: &dyn Clock,
        number: u64,
        start: Fleet,
        text: &str,
        start_file: &str,
    ) -> Result<Generation, StoreError> {
        db.put(&TakenFleet {
            generation: number,
            text: text.to_string(),
            start_file: start_file.to_string(),
            by: "start file".into(),
            at: clock.now(),
        })
        .await?;
        Ok(Generation {
            number,
            fleet: Arc::new(start),
        })
    }

    /// The fleet in force: what a new deployment starts with.
    pub fn current(&self) -> Generation {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Generation `number`, which a deployment started with; the one in force
    /// if it is gone (a store from before generations were kept).
    pub async fn generation(&self, number: Option<u64>) -> Generation {
        let current = self.current();
        let Some(number) = number.filter(|n| *n != current.number) else {
            return current;
        };
        if let Some(fleet) = self
            .earlier
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&number)
        {
            return Generation {
                number,
                fleet: fleet.clone(),
            };
        }
        let key = TakenFleet {
            generation: number,
            text: String::new(),
            start_file: String::new(),
            by: String::new(),
            at: 0,
        }
        .key();
        let parsed = match self.db.get::<TakenFleet>(&key).await {
            Ok(Some(taken)) => Fleet::parse(&taken.text, &format!("fleet generation {number}"))
                .map_err(|e| e.to_string()),
            Ok(None) => Err("it is not stored".to_string()),
            Err(e) => Err(e.to_string()),
        };
        match parsed {
            Ok(fleet) => {
                let fleet = Arc::new(fleet);
                self.earlier
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(number, fleet.clone());
                Generation { number, fleet }
            }
            Err(e) => {
                warn!(generation = number, error = %e, "cannot read a deployment's fleet; using the one in force");
                current
            }
        }
    }

    /// Takes `text` as the fleet in force from now on, for deployments that
    /// start from now on. Refused whole, changing nothing, if it is not a
    /// valid fleet file or changes what only a restart can (`[coordinator]`,
    /// `[cloud]`); `busy` names the targets that may not leave the fleet yet.
    /// Returns the new generation (the same one if nothing changed) and the
    /// changes.
    pub async fn apply(
        &self,
        text: &str,
        by: &str,
        busy: &[String],
    ) -> Result<(Generation, Vec<String>), FleetError> {
        let _one = self.applying.lock().await;
        let new = Fleet::parse(text, "the new fleet file")?;
        let current = self.current();
        restart_only(&current.fleet, &new)?;
        for target in busy {
            if let Some((project, environment)) = target.split_once('/')
                && !(new.projects.contains_key(project)
                    && new.environments.contains_key(environment))
            {
                return Err(FleetError::Invalid(format!(
                    "{target} has deployments queued or in progress and the new fleet file drops it: wait for them or cancel them first"
                )));
            }
        }
        let changes = crate::config_diff::diff(&current.fleet, &new);
        if changes.is_empty() {
            return Ok((current, changes));
        }
        let number = current.number + 1;
        let mut stored = Changes::default();
        stored.put(&TakenFleet {
            generation: number,
            text: text.to_string(),
            start_file: self.start_file.clone(),
            by: by.to_string(),
            at: self.clock.now(),
        })?;
        let told = Event {
            who: Some(by.to_string()),
            ..Event::new(
                "fleet.applied",
                format!(
                    "fleet generation {number} applied by {by}: {}",
                    changes.join("; ")
                ),
            )
        };
        self.events.commit(stored, vec![told]).await?;
        let taken = Generation {
            number,
            fleet: Arc::new(new),
        };
        let before = std::mem::replace(
            &mut *self.current.write().unwrap_or_else(|e| e.into_inner()),
            taken.clone(),
        );
        // Deployments in progress still use it.
        self.earlier
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(before.number, before.fleet);
        Ok((taken, changes))
    }
}

/// Refuses a new fleet that changes what the coordinator took at its start:
/// its own settings and the cloud it drives.
fn restart_only(current: &Fleet, new: &Fleet) -> Result<(), FleetError> {
    let section = match () {
        _ if current.coordinator != new.coordinator => "[coordinator]",
        _ if current.cloud != new.cloud => "[cloud]",
        _ => return Ok(()),
    };
    Err(FleetError::Invalid(format!(
        "the new fleet file changes {section}, which takes effect only at a start: change it in the file the coordinator starts with, and restart it"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::sample::SAMPLE_FLEET;

    fn clock() -> Arc<dyn Clock> {
        Arc::new(ManualClock::at(1_000))
    }

    async fn open(db: &Db, text: &str) -> Fleets {
        let fleet = Fleet::parse(text, "fleet.toml").unwrap();
        let events = Arc::new(Events::new(db.clone(), clock()));
        Fleets::open(db.clone(), clock(), events, fleet, text)
            .await
            .unwrap()
    }

    fn greeting(g: &Generation) -> String {
        g.fleet.variables("hello", "prod1")["GREETING"].clone()
    }

    #[tokio::test]
    async fn an_applied_fleet_outlives_a_restart_until_the_start_file_changes() {
        let db = Db::memory();
        let fleets = open(&db, SAMPLE_FLEET).await;
        assert_eq!(fleets.current().number, 1);
        let again = SAMPLE_FLEET.replace("hello from prod1", "hello again");
        let (applied, changes) = fleets.apply(&again, "alice", &[]).await.unwrap();
        assert_eq!(applied.number, 2);
        assert_eq!(
            changes,
            vec![
                "environment prod1 changed",
                "hello/prod1: ~ GREETING: hello from prod1 -> hello again"
            ]
        );
        assert_eq!(greeting(&fleets.current()), "hello again");
        assert_eq!(
            greeting(&fleets.generation(Some(1)).await),
            "hello from prod1",
            "a deployment started before keeps its fleet"
        );

        // Restarted with the same start file: the applied one stays.
        let restarted = open(&db, SAMPLE_FLEET).await;
        assert_eq!(restarted.current().number, 2);
        assert_eq!(greeting(&restarted.current()), "hello again");
        assert_eq!(
            greeting(&restarted.generation(Some(1)).await),
            "hello from prod1",
            "read back from the store"
        );

        // Restarted with an edited start file: that one is the newest word.
        let edited = SAMPLE_FLEET.replace("hello from prod1", "edited by hand");
        let restarted = open(&db, &edited).await;
        assert_eq!(restarted.current().number, 3);
        assert_eq!(greeting(&restarted.current()), "edited by hand");
    }

    #[tokio::test]
    async fn a_bad_or_restart_only_fleet_changes_nothing() {
        let db = Db::memory();
        let fleets = open(&db, SAMPLE_FLEET).await;
        let cases = [
            (
                SAMPLE_FLEET.replace("instance_port = 8080", "instance_prot = 8080"),
                "instance_prot",
            ),
            (
                SAMPLE_FLEET.replace("agent_lost_after = \"4s\"", "agent_lost_after = \"9s\""),
                "[coordinator]",
            ),
            (
                SAMPLE_FLEET.replace("[projects.hello", "[projects.hellox"),
                "hello/staging has deployments queued",
            ),
        ];
        for (text, named) in cases {
            let err = fleets
                .apply(&text, "alice", &["hello/staging".to_string()])
                .await
                .unwrap_err()
                .to_string();
            assert!(err.contains(named), "{named}: {err}");
            assert_eq!(fleets.current().number, 1, "{named}");
        }
        let (same, changes) = fleets.apply(SAMPLE_FLEET, "alice", &[]).await.unwrap();
        assert_eq!(
            (same.number, changes.len()),
            (1, 0),
            "no change, no generation"
        );
        assert_eq!(db.all::<TakenFleet>().await.unwrap().len(), 1);
    }
}
