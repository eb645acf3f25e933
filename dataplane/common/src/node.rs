//! Node states of the hot-standby pair, as carried in heartbeats and used
//! by the control plane's state machine. Numbered for the wire.

/// State of a director (or, for IVR heartbeats, of an IVR server).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "user", derive(serde::Serialize, serde::Deserialize), serde(rename_all = "lowercase"))]
pub enum NodeState {
    /// Starting: listening for the peer before deciding.
    Init = 0,
    /// Healthy, not serving; ready to take over.
    Standby = 1,
    /// Peer lost on every path; checking the witness before serving.
    Takeover = 2,
    /// Serving: owns the VIPs and the spans.
    Active = 3,
    /// A local fault (interface down, card alarm): must not serve.
    Fault = 4,
    /// Taken out of service by the operator.
    Maintenance = 5,
}

impl NodeState {
    pub const ALL: [NodeState; 6] = [
        NodeState::Init,
        NodeState::Standby,
        NodeState::Takeover,
        NodeState::Active,
        NodeState::Fault,
        NodeState::Maintenance,
    ];

    pub const fn from_u8(v: u8) -> Option<NodeState> {
        match v {
            0 => Some(NodeState::Init),
            1 => Some(NodeState::Standby),
            2 => Some(NodeState::Takeover),
            3 => Some(NodeState::Active),
            4 => Some(NodeState::Fault),
            5 => Some(NodeState::Maintenance),
            _ => None,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            NodeState::Init => "init",
            NodeState::Standby => "standby",
            NodeState::Takeover => "takeover",
            NodeState::Active => "active",
            NodeState::Fault => "fault",
            NodeState::Maintenance => "maintenance",
        }
    }
}
