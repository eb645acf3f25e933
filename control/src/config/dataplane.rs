//! The virtual services of a [`Config`] in the dataplane's form
//! ([`ServiceConfig`]), with interface names resolved to indexes through a
//! closure the caller supplies, and the dataplane's own checks mapped back
//! to the file's field names (`service[0].real[1].address`).
//!
//! It must not touch the system itself: [`ifindex`] is offered for the
//! caller to pass, and the checks at parse time pass a placeholder.

use tandem_dataplane::{RealConfig, ServiceConfig};

use super::{Config, ConfigError, ServiceEntry, value::quoted};

impl Config {
    /// The virtual services in the dataplane's form. `ifindex` maps an
    /// interface name to its index (`None`: no such interface); see
    /// [`ifindex`] for the system's.
    pub fn dataplane_services(
        &self,
        mut ifindex: impl FnMut(&str) -> Option<u32>,
    ) -> Result<Vec<ServiceConfig>, ConfigError> {
        self.services
            .iter()
            .enumerate()
            .map(|(i, s)| service_config(i, s, &mut ifindex))
            .collect()
    }
}

/// The system's interface index of `name` in the caller's network
/// namespace, for [`Config::dataplane_services`].
pub fn ifindex(name: &str) -> Option<u32> {
    nix::net::if_::if_nametoindex(name).ok()
}

/// `service[i]` in the dataplane's form, checked by the dataplane.
pub(super) fn service_config(
    i: usize,
    s: &ServiceEntry,
    ifindex: &mut dyn FnMut(&str) -> Option<u32>,
) -> Result<ServiceConfig, ConfigError> {
    let mut resolve = |field: String, name: &Option<String>| match name {
        None => Ok(0),
        Some(n) => ifindex(n).ok_or_else(|| ConfigError::Invalid {
            field,
            value: quoted(n),
            problem: "is not an interface of this host".into(),
        }),
    };
    let client_ifindex = resolve(
        format!("service[{i}].client_interface"),
        &s.client_interface,
    )?;
    let mut reals = Vec::with_capacity(s.reals.len());
    for (j, r) in s.reals.iter().enumerate() {
        reals.push(RealConfig {
            addr: r.address,
            port: r.port,
            // Unknown until the neighbour table gives it (`crate::neigh`).
            mac: r.mac.unwrap_or([0; 6]),
            weight: r.weight,
            state: r.state,
            ifindex: resolve(format!("service[{i}].real[{j}].interface"), &r.interface)?,
        });
    }
    let sc = ServiceConfig {
        vip: s.vip,
        port: s.port,
        proto: s.protocol,
        scheduler: s.scheduler,
        forward: s.forward,
        flags: s.flags,
        mh_size: s.mh_size,
        client_ifindex,
        gateway_mac: s.gateway_mac.unwrap_or([0; 6]),
        reals,
    };
    sc.validate().map_err(|e| dataplane_error(i, e))?;
    Ok(sc)
}

/// Maps a check of the dataplane to the file's field names.
fn dataplane_error(i: usize, e: tandem_dataplane::ConfigError) -> ConfigError {
    let file_field = |f: &str| match f {
        "addr" => "address".to_string(),
        "proto" => "protocol".to_string(),
        "reals" => "real".to_string(),
        other => other.to_string(),
    };
    match e {
        tandem_dataplane::ConfigError::Service {
            service,
            field,
            reason,
        } => ConfigError::Invalid {
            field: format!("service[{i}].{}", file_field(field)),
            value: format!("({service})"),
            problem: reason,
        },
        tandem_dataplane::ConfigError::Real {
            index,
            addr,
            field,
            reason,
            ..
        } => ConfigError::Invalid {
            field: format!("service[{i}].real[{index}].{}", file_field(field)),
            value: format!("({addr})"),
            problem: reason,
        },
    }
}
