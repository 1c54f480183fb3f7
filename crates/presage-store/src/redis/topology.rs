//! Which node of a Redis Cluster owns which slot, from `CLUSTER SLOTS`.
//!
//! The cluster client in redis-rs sends a pipeline to one node and refuses a
//! pipeline whose keys hash to different slots. A version's keys spread over all
//! 16384 slots, so the writer groups each batch by owning node itself and routes
//! each group to that node by one of the node's slots; the node accepts the
//! single-key commands of all its slots in one pipeline.

use ::redis::Value;

use super::slot::SLOTS;

/// The slot map of a cluster.
#[derive(Debug)]
pub(crate) struct Topology {
    /// Node index of every slot (slots no node serves map to node 0; commands for
    /// them fail with the server's error and go through the retry path).
    slot_node: Vec<u16>,
    /// The primaries, each with a slot it owns (the route to it).
    nodes: Vec<Node>,
}

/// A primary node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node {
    /// `host:port`.
    pub addr: String,
    /// A slot the node owns: routing a command by it reaches the node.
    pub route_slot: u16,
}

impl Topology {
    /// Reads a `CLUSTER SLOTS` reply: `[[start, end, [host, port, id, ...], replicas...], ...]`.
    pub(crate) fn from_cluster_slots(reply: &Value) -> Result<Topology, String> {
        let Value::Array(ranges) = reply else {
            return Err(format!("expected an array, got `{reply:?}`"));
        };
        let mut slot_node = vec![0u16; SLOTS];
        let mut nodes: Vec<Node> = Vec::new();
        for range in ranges {
            let Value::Array(parts) = range else {
                return Err(format!("expected a slot range, got `{range:?}`"));
            };
            let (Some(start), Some(end), Some(Value::Array(primary))) = (
                parts.first().and_then(int),
                parts.get(1).and_then(int),
                parts.get(2),
            ) else {
                return Err(format!("malformed slot range `{range:?}`"));
            };
            let (Some(host), Some(port)) =
                (primary.first().and_then(text), primary.get(1).and_then(int))
            else {
                return Err(format!("malformed node in slot range `{range:?}`"));
            };
            let (Ok(start), Ok(end)) = (u16::try_from(start), u16::try_from(end)) else {
                return Err(format!("slot range `{start}-{end}` out of bounds"));
            };
            if start > end || usize::from(end) >= SLOTS {
                return Err(format!("slot range `{start}-{end}` out of bounds"));
            }
            let addr = format!("{host}:{port}");
            let index = match nodes.iter().position(|n| n.addr == addr) {
                Some(index) => index,
                None => {
                    nodes.push(Node {
                        addr,
                        route_slot: start,
                    });
                    nodes.len() - 1
                }
            };
            let index = u16::try_from(index).map_err(|_| "more than 65535 nodes".to_owned())?;
            slot_node[usize::from(start)..=usize::from(end)].fill(index);
        }
        if nodes.is_empty() {
            return Err("no slot is served by any node".to_owned());
        }
        Ok(Topology { slot_node, nodes })
    }

    /// The index (into [`Topology::nodes`]) of the node owning `slot`.
    pub(crate) fn node_of(&self, slot: u16) -> usize {
        usize::from(self.slot_node[usize::from(slot)])
    }

    /// The primaries.
    pub(crate) fn nodes(&self) -> &[Node] {
        &self.nodes
    }
}

fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Int(i) => Some(*i),
        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(start: i64, end: i64, port: i64) -> Value {
        Value::Array(vec![
            Value::Int(start),
            Value::Int(end),
            Value::Array(vec![
                Value::BulkString(b"127.0.0.1".to_vec()),
                Value::Int(port),
                Value::BulkString(b"id".to_vec()),
            ]),
        ])
    }

    #[test]
    fn slot_ranges_map_to_nodes() {
        let reply = Value::Array(vec![
            range(0, 5460, 7000),
            range(5461, 10922, 7001),
            range(10923, 16383, 7002),
            range(100, 100, 7002),
        ]);
        let topology = Topology::from_cluster_slots(&reply).unwrap();
        assert_eq!(topology.nodes().len(), 3);
        assert_eq!(topology.node_of(0), 0);
        assert_eq!(topology.node_of(100), 2);
        assert_eq!(topology.node_of(5461), 1);
        assert_eq!(topology.node_of(16383), 2);
        assert_eq!(topology.nodes()[2].addr, "127.0.0.1:7002");
        assert_eq!(topology.nodes()[2].route_slot, 10923);
    }

    #[test]
    fn garbage_is_refused() {
        assert!(Topology::from_cluster_slots(&Value::Nil).is_err());
        assert!(Topology::from_cluster_slots(&Value::Array(vec![])).is_err());
        assert!(Topology::from_cluster_slots(&Value::Array(vec![range(0, 20000, 1)])).is_err());
    }
}
