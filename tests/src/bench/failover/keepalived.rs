//! keepalived as the other system: its configuration (VRRPv3 at its
//! 10 ms minimum, unicast on the service network; with BFD, 10 ms × 3 on
//! the heartbeat link, tracked by the VRRP instance) and its start in a
//! director's namespace, with the PIDs of its children.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, bail};

use super::HARNESS_POLL;
use super::daemon::Daemon;
use super::harness::Bench;
use crate::lab::wait::wait_until;
use crate::lab::{self, DIRECTOR_A, VIP};

impl Bench {
    pub(super) fn keepalived_config(&self, me: &str, bfd: bool) -> Result<PathBuf> {
        let text = config_text(me, bfd);
        let path = self.dir.join(format!(
            "keepalived-{}-{me}.conf",
            if bfd { "bfd" } else { "vrrp" }
        ));
        std::fs::write(&path, text)?;
        Ok(path)
    }
}

/// keepalived's configuration for director `me` (VRRPv3 at 10 ms,
/// unicast on the service network; with `bfd`, BFD on the heartbeat link
/// tracked by the instance). The startup bench runs it too.
pub(crate) fn config_text(me: &str, bfd: bool) -> String {
    let (priority, src, peer, hb_src, hb_peer) = if me == DIRECTOR_A {
        (
            250,
            lab::DIRECTOR_A_ADDR,
            lab::DIRECTOR_B_ADDR,
            lab::HB_A_ADDR,
            lab::HB_B_ADDR,
        )
    } else {
        (
            200,
            lab::DIRECTOR_B_ADDR,
            lab::DIRECTOR_A_ADDR,
            lab::HB_B_ADDR,
            lab::HB_A_ADDR,
        )
    };
    // The same real-time priority as tandem's loop (keepalived's own
    // knobs for it), so that neither is at the scheduler's mercy.
    let mut text = format!(
        "global_defs {{\n  router_id {me}\n  vrrp_rt_priority {rt}\n  bfd_rt_priority {rt}\n}}\n",
        rt = super::tandem::REALTIME_PRIORITY
    );
    if bfd {
        // On the heartbeat link, like tandem's dedicated path. The
        // tracked weight lowers the priority while the peer is up
        // (`reverse`): when BFD loses the peer, the standby's
        // priority goes up, which is the only lever keepalived 2.2.7
        // gives BFD over a backup instance.
        text.push_str(&format!(
                "bfd_instance peer {{\n  neighbor_ip {hb_peer}\n  source_ip {hb_src}\n  min_rx 10\n  min_tx 10\n  multiplier 3\n  vrrp\n}}\n"
            ));
    }
    text.push_str(&format!(
            "vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n  version 3\n  priority {priority}\n  advert_int 0.01\n  unicast_src_ip {src}\n  unicast_peer {{\n    {peer}\n  }}\n  virtual_ipaddress {{\n    {VIP}/32 dev eth0\n  }}\n"
        ));
    if bfd {
        text.push_str("  track_bfd {\n    peer weight 50 reverse\n  }\n");
    }
    text.push_str("}\n");
    text
}

impl Bench {
    pub(super) fn start_keepalived(&self, me: &'static str, bfd: bool) -> Result<Daemon> {
        let config = self.keepalived_config(me, bfd)?;
        let base = self.dir.join(format!("keepalived-{me}"));
        let pidf = |s: &str| PathBuf::from(format!("{}{s}.pid", base.display()));
        let (main, vrrp, bfdp, chk) = (pidf(""), pidf("-vrrp"), pidf("-bfd"), pidf("-check"));
        for p in [&main, &vrrp, &bfdp, &chk] {
            let _ = std::fs::remove_file(p);
        }
        let tag = config.display().to_string();
        // Foreground, log to the console (our pipe), details, no syslog,
        // never respawn a child (a respawned child would outlive a kill).
        let mut args: Vec<String> = vec![
            "-n".into(),
            "-l".into(),
            "-D".into(),
            "-G".into(),
            "-R".into(),
            "-f".into(),
            tag.clone(),
        ];
        for (flag, p) in [("-p", &main), ("-r", &vrrp), ("-b", &bfdp), ("-c", &chk)] {
            args.push(flag.into());
            args.push(p.display().to_string());
        }
        if !bfd {
            args.push("-P".into()); // VRRP only
        }
        let mut d = Daemon::spawn(self.lab.ns(me)?, &self.opts.keepalived, &args, &tag, false)?;
        let read_pid = |p: &Path| {
            std::fs::read_to_string(p)
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok())
        };
        let wanted: Vec<&PathBuf> = if bfd { vec![&vrrp, &bfdp] } else { vec![&vrrp] };
        if !wait_until(Duration::from_secs(5), HARNESS_POLL, || {
            wanted.iter().all(|p| read_pid(p).is_some())
        }) {
            bail!("keepalived in {me}: no child pidfiles after 5 s");
        }
        d.extra = wanted.iter().filter_map(|p| read_pid(p)).collect();
        Ok(d)
    }
}
