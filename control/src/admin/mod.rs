//! The admin protocol between `tandemctl` and `tandemd`: newline-delimited
//! JSON over a root-only Unix stream socket.
//!
//! A request is one JSON object per line, `{"cmd":"status"}`,
//! `{"cmd":"switchover"}`, `{"cmd":"services"}`, `{"cmd":"reals"}`,
//! `{"cmd":"cards"}`, `{"cmd":"sync"}`, `{"cmd":"stats"}`,
//! `{"cmd":"maintenance","on":true}`, `{"cmd":"conns","vip":"198.18.0.100"}`
//! or `{"cmd":"zero"}` (within [`MAX_LINE`]); each gets one
//! JSON object per line back (within [`MAX_ANSWER`]: answers grow with the
//! configuration), tagged by `"reply"`: `status`, `services`, `reals`,
//! `cards`, `sync`, `stats`, `conns`, `done` or `error`. (`Request::Cards` is behind the
//! `admin-cards` feature until tandemd answers it; [`request_cards`] sends
//! the same line either way.)
//!
//! This module owns the message types and their wire form ([`protocol`]),
//! the server-side helpers the daemon's reactor drives without blocking
//! ([`server`]: [`bind`] with mode 0600, [`Connection`] for line framing
//! over a non-blocking stream within a size and time budget, and
//! [`HttpConnection`], the same for a scrape of the metrics endpoint), the
//! blocking client ([`client`]: [`request`]), the human-readable tables
//! `tandemctl` prints ([`mod@render`]) and the rates it computes from two
//! `services` answers ([`rate`]). It knows nothing of the pair state
//! machine or the dataplane: states are strings the daemon fills in, and it
//! decides nothing.

use std::{io, path::Path};

pub mod client;
pub mod protocol;
pub mod edits;
pub mod rate;
pub mod render;
pub mod server;

pub use client::{connect, connect_error, request, request_cards};
pub use protocol::{
    AdminError, CARDS_REQUEST, ChannelStatus, DampingStatus, DeadManStatus, MAX_ANSWER, MAX_EVENTS,
    MAX_LINE, PathStatus, PeerStatus, RealStatus, ReasonCount, ReloadReply, Request, Response, ServiceStatus,
    SpanStatus, StatusReply, SwitchoverHold, SyncReply, VipStatus, WitnessStatus, authorize,
    format_response, parse_request,
};
pub use protocol::{ConnCursor, ConnStatus, ConnTable, MAX_CONNS, service_name};
pub use render::{
    render, render_cards, render_reals, render_reload, render_services, render_stats, render_status, render_sync,
};
pub use render::{render_conns, render_rates};
pub use server::{
    ANSWER_IDLE, ANSWER_TIMEOUT, Connection, HTTP_TIMEOUT, HttpConnection, HttpRead,
    MAX_HTTP_REQUEST, MAX_OUTPUT, READ_GROUP_MODE, REQUEST_TIMEOUT, SOCKET_MODE, bind,
    share_with_group,
};

#[cfg(test)]
mod tests;

fn io_err<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(io::Error) -> AdminError + 'a {
    move |source| AdminError::Io {
        path: path.to_owned(),
        op,
        source,
    }
}
