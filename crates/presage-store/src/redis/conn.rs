//! One connection to a standalone server or a cluster, and sending batches of
//! single-key commands to it with pipelining.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use ::redis::aio::{ConnectionLike, MultiplexedConnection};
use ::redis::cluster_async::ClusterConnection;
use ::redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use ::redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};

use super::RedisStoreError;
use super::slot::slot;
use super::topology::Topology;

/// Rounds of regrouping by a fresh slot map before a failed cluster batch falls back
/// to one command at a time.
const REGROUP_ROUNDS: u32 = 3;

/// A multiplexed connection: cheap to clone, usable from many tasks at once.
#[derive(Clone)]
pub(crate) enum Conn {
    /// A standalone server.
    Single(MultiplexedConnection),
    /// A cluster, with the slot map the writer groups keys by.
    Cluster(ClusterConnection, Arc<RwLock<Arc<Topology>>>),
}

/// Timeouts for new connections.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub connect: Duration,
    pub response: Duration,
}

/// A batch of single-key commands for one node (all of them, when standalone).
pub(crate) struct Batch {
    /// The commands.
    pub pipe: Pipeline,
    /// For a cluster: a slot the target node owns.
    pub route_slot: Option<u16>,
}

/// The replies of a batch, in command order.
pub(crate) struct Replies {
    /// One reply per command.
    pub values: Vec<Value>,
    /// Whether some commands were sent more than once (after a failure), so a reply
    /// may describe the effect of an earlier attempt.
    pub retried: bool,
}

/// A URL (or several) for messages: any password replaced by `***`.
pub(crate) fn redact(urls: &[String]) -> String {
    urls.iter()
        .map(|url| match (url.find("://"), url.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                let userinfo = &url[scheme + 3..at];
                match userinfo.find(':') {
                    Some(colon) => format!(
                        "{}{}:***{}",
                        &url[..scheme + 3],
                        &userinfo[..colon],
                        &url[at..]
                    ),
                    None => url.clone(),
                }
            }
            _ => url.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Refuses a URL the store cannot connect with, before any connection is tried.
///
/// TLS is refused rather than supported: the client would need rustls with a crypto
/// provider and a way to trust a private CA, and the tests a TLS server with
/// certificates; until then `rediss://` fails here, at config load, instead of at the
/// first run. Unix sockets are refused too: the config only ever accepted `redis://`.
pub(crate) fn check_url(url: &str) -> Result<(), RedisStoreError> {
    let scheme = url.split_once("://").map(|(scheme, _)| scheme);
    let reason = match scheme.map(str::to_ascii_lowercase).as_deref() {
        Some("redis") => return Ok(()),
        Some("rediss") => {
            "asks for TLS (`rediss://`), which presage does not support yet; connect with `redis://host:port` (through a TLS tunnel such as stunnel where the server requires TLS)"
        }
        _ => "is not a redis URL; expected `redis://host:port`",
    };
    Err(RedisStoreError::UnsupportedUrl {
        url: redact(std::slice::from_ref(&url.to_owned())),
        reason,
    })
}

/// Connects to `urls`: one URL is a standalone server unless the server says it is a
/// cluster node (`cluster_enabled:1`); several URLs are seed nodes of a cluster.
pub(crate) async fn connect(urls: &[String], timeouts: Timeouts) -> Result<Conn, RedisStoreError> {
    for url in urls {
        check_url(url)?;
    }
    let shown = redact(urls);
    let fail = |error| RedisStoreError::Connect {
        url: shown.clone(),
        error: Box::new(error),
    };
    let cluster = match urls {
        [] => {
            return Err(fail(RedisError::from((
                ::redis::ErrorKind::InvalidClientConfig,
                "no redis url given",
            ))));
        }
        [url] => {
            let client = ::redis::Client::open(url.as_str()).map_err(fail)?;
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(timeouts.connect)
                .set_response_timeout(timeouts.response);
            let mut conn = client
                .get_multiplexed_async_connection_with_config(&config)
                .await
                .map_err(fail)?;
            let info: String = ::redis::cmd("INFO")
                .arg("cluster")
                .query_async(&mut conn)
                .await
                .map_err(fail)?;
            if !info.lines().any(|line| line.trim() == "cluster_enabled:1") {
                return Ok(Conn::Single(conn));
            }
            ::redis::cluster::ClusterClientBuilder::new(vec![url.as_str()])
        }
        urls => ::redis::cluster::ClusterClientBuilder::new(urls.iter().map(String::as_str)),
    };
    let client = cluster
        .connection_timeout(timeouts.connect)
        .response_timeout(timeouts.response)
        .build()
        .map_err(fail)?;
    let mut conn = client.get_async_connection().await.map_err(fail)?;
    let topology = fetch_topology(&mut conn, &shown).await?;
    Ok(Conn::Cluster(
        conn,
        Arc::new(RwLock::new(Arc::new(topology))),
    ))
}

async fn fetch_topology(
    conn: &mut ClusterConnection,
    shown: &str,
) -> Result<Topology, RedisStoreError> {
    let reply: Value = conn
        .route_command(
            ::redis::cmd("CLUSTER").arg("SLOTS"),
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
        )
        .await
        .map_err(|error| RedisStoreError::Connect {
            url: shown.to_owned(),
            error: Box::new(error),
        })?;
    Topology::from_cluster_slots(&reply).map_err(|message| RedisStoreError::Topology {
        url: shown.to_owned(),
        message,
    })
}

fn route(slot: u16) -> SingleNodeRoutingInfo {
    SingleNodeRoutingInfo::SpecificNode(Route::new(slot, SlotAddr::Master))
}

impl Conn {
    /// The current slot map (cluster only).
    fn topology(&self) -> Option<Arc<Topology>> {
        match self {
            Conn::Single(_) => None,
            Conn::Cluster(_, topology) => {
                Some(topology.read().unwrap_or_else(|e| e.into_inner()).clone())
            }
        }
    }

    /// The nodes to scan, each as the route to it (`None` for standalone).
    pub(crate) fn scan_routes(&self) -> Vec<Option<u16>> {
        match self.topology() {
            None => vec![None],
            Some(topology) => topology
                .nodes()
                .iter()
                .map(|n| Some(n.route_slot))
                .collect(),
        }
    }

    /// Groups single-key commands into one pipeline per node. `slots[i]` is the slot
    /// of the key of `cmds[i]`.
    pub(crate) fn group(&self, cmds: Vec<Cmd>, slots: &[u16]) -> Vec<Batch> {
        let Some(topology) = self.topology() else {
            let mut pipe = Pipeline::with_capacity(cmds.len());
            for cmd in cmds {
                pipe.add_command(cmd);
            }
            return vec![Batch {
                pipe,
                route_slot: None,
            }];
        };
        let nodes = topology.nodes();
        let mut pipes: Vec<(Pipeline, Option<u16>)> = (0..nodes.len())
            .map(|_| (Pipeline::with_capacity(cmds.len() / nodes.len() + 16), None))
            .collect();
        for (cmd, &slot) in cmds.into_iter().zip(slots) {
            let entry = &mut pipes[topology.node_of(slot)];
            entry.0.add_command(cmd);
            // Route by a slot of this batch rather than the node's first slot, so
            // the batch follows the client's own slot map when the two disagree.
            entry.1.get_or_insert(slot);
        }
        pipes
            .into_iter()
            .filter(|(pipe, _)| !pipe.is_empty())
            .map(|(pipe, route_slot)| Batch { pipe, route_slot })
            .collect()
    }

    /// Sends a batch built by [`Conn::group`] and returns its replies in order.
    ///
    /// On a cluster, a failed batch (a slot moved, a node failed over) is regrouped by
    /// a fresh slot map and resent, a few rounds, then sent one command at a time
    /// through the client's own routing, which follows `MOVED` and `ASK`. The
    /// commands must be idempotent.
    pub(crate) async fn send(&self, batch: &Batch) -> RedisResult<Replies> {
        match self {
            Conn::Single(conn) => {
                let values: Vec<Value> = batch.pipe.query_async(&mut conn.clone()).await?;
                Ok(Replies {
                    values,
                    retried: false,
                })
            }
            Conn::Cluster(conn, _) => {
                let mut conn = conn.clone();
                let first = conn
                    .route_pipeline(
                        &batch.pipe,
                        0,
                        batch.pipe.len(),
                        route(batch.route_slot.unwrap_or(0)),
                    )
                    .await;
                // The cluster client hands back per-command server errors (`MOVED`
                // for a slot that moved) as values: any of them fails the batch.
                let first = first.and_then(|values| {
                    match values.iter().find(|v| matches!(v, Value::ServerError(_))) {
                        Some(error) => Err(RedisError::from((
                            ::redis::ErrorKind::ResponseError,
                            "a command of a pipeline failed",
                            format!("{error:?}"),
                        ))),
                        None => Ok(values),
                    }
                });
                match first {
                    Ok(values) => Ok(Replies {
                        values,
                        retried: false,
                    }),
                    Err(error) => self.resend(conn, &batch.pipe, error).await,
                }
            }
        }
    }

    async fn resend(
        &self,
        mut conn: ClusterConnection,
        pipe: &Pipeline,
        error: RedisError,
    ) -> RedisResult<Replies> {
        let Conn::Cluster(_, shared) = self else {
            return Err(error);
        };
        let cmds: Vec<&Cmd> = pipe.cmd_iter().collect();
        let slots: Vec<u16> = cmds
            .iter()
            .map(|cmd| {
                cmd.args_iter().nth(1).map_or(0, |arg| match arg {
                    ::redis::Arg::Simple(key) => slot(key),
                    ::redis::Arg::Cursor => 0,
                })
            })
            .collect();
        let mut values: Vec<Option<Value>> = vec![None; cmds.len()];
        let mut pending: Vec<usize> = (0..cmds.len()).collect();
        for round in 0..REGROUP_ROUNDS {
            tokio::time::sleep(Duration::from_millis(50 << round)).await;
            if let Ok(reply) = conn
                .route_command(
                    ::redis::cmd("CLUSTER").arg("SLOTS"),
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
                )
                .await
                && let Ok(topology) = Topology::from_cluster_slots(&reply)
            {
                *shared.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(topology);
            }
            let Some(topology) = self.topology() else {
                break;
            };
            let mut groups: Vec<Vec<usize>> = vec![Vec::new(); topology.nodes().len()];
            for &i in &pending {
                groups[topology.node_of(slots[i])].push(i);
            }
            let mut failed = Vec::new();
            for group in groups.into_iter().filter(|g| !g.is_empty()) {
                let mut sub = Pipeline::with_capacity(group.len());
                for &i in &group {
                    sub.add_command(cmds[i].clone());
                }
                match conn
                    .route_pipeline(&sub, 0, sub.len(), route(slots[group[0]]))
                    .await
                {
                    Ok(replies) if !replies.iter().any(|v| matches!(v, Value::ServerError(_))) => {
                        for (&i, value) in group.iter().zip(replies) {
                            values[i] = Some(value);
                        }
                    }
                    _ => failed.extend(group),
                }
            }
            pending = failed;
            if pending.is_empty() {
                break;
            }
        }
        for i in pending {
            values[i] = Some(cmds[i].query_async(&mut conn).await?);
        }
        Ok(Replies {
            values: values
                .into_iter()
                .map(|v| v.unwrap_or(Value::Nil))
                .collect(),
            retried: true,
        })
    }

    /// One `SCAN` step on one node: the next cursor and the keys found.
    pub(crate) async fn scan(
        &self,
        route_slot: Option<u16>,
        cursor: u64,
        pattern: &str,
        count: usize,
    ) -> RedisResult<(u64, Vec<Vec<u8>>)> {
        let mut cmd = ::redis::cmd("SCAN");
        cmd.arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(count);
        match (self, route_slot) {
            (Conn::Cluster(conn, _), Some(slot)) => {
                let reply = conn
                    .clone()
                    .route_command(&cmd, RoutingInfo::SingleNode(route(slot)))
                    .await?;
                ::redis::from_owned_redis_value(reply)
            }
            _ => cmd.query_async(&mut self.clone()).await,
        }
    }

    /// Deletes keys (all owned by the node at `route_slot`, for a cluster) with
    /// `UNLINK`, which frees memory in the background.
    pub(crate) async fn unlink(
        &self,
        route_slot: Option<u16>,
        keys: &[Vec<u8>],
    ) -> RedisResult<()> {
        if keys.is_empty() {
            return Ok(());
        }
        match (self, route_slot) {
            (Conn::Cluster(conn, _), Some(slot)) => {
                // Keys of different slots may not share a command: one UNLINK each.
                let mut pipe = Pipeline::with_capacity(keys.len());
                for key in keys {
                    pipe.cmd("UNLINK").arg(key);
                }
                conn.clone()
                    .route_pipeline(&pipe, 0, keys.len(), route(slot))
                    .await
                    .map(drop)
            }
            _ => {
                ::redis::cmd("UNLINK")
                    .arg(keys)
                    .query_async(&mut self.clone())
                    .await
            }
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(conn) => conn.req_packed_command(cmd),
            Conn::Cluster(conn, _) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(conn) => conn.req_packed_commands(cmd, offset, count),
            Conn::Cluster(conn, _) => conn.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(conn) => conn.get_db(),
            Conn::Cluster(conn, _) => conn.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{check_url, redact};

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redact(&["redis://:secret@host:6379/0".to_owned()]),
            "redis://:***@host:6379/0"
        );
        assert_eq!(
            redact(&["redis://user:pw@h".to_owned(), "redis://h2".to_owned()]),
            "redis://user:***@h, redis://h2"
        );
        assert_eq!(
            redact(&["redis://127.0.0.1:6379".to_owned()]),
            "redis://127.0.0.1:6379"
        );
    }

    #[test]
    fn only_plain_redis_urls_are_accepted() {
        assert!(check_url("redis://127.0.0.1:6379").is_ok());
        assert!(check_url("REDIS://h").is_ok());
        let tls = check_url("rediss://:secret@h:6380")
            .unwrap_err()
            .to_string();
        assert!(
            tls.starts_with("`rediss://:***@h:6380` asks for TLS (`rediss://`)")
                && tls.contains("not support yet"),
            "{tls}"
        );
        for url in ["http://x", "redis+unix:///tmp/r.sock", "h:6379", ""] {
            let error = check_url(url).unwrap_err().to_string();
            assert!(error.contains("is not a redis URL"), "{url}: {error}");
        }
    }
}
