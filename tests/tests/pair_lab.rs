//! The hot-standby pair lab: two directors on the service network and on a
//! dedicated heartbeat link, a witness, a client, IVRs; links can be cut.

use std::time::Duration;

use tandem_tests::{
    Lab,
    lab::{
        DIRECTOR_A, DIRECTOR_B, DIRECTOR_B_ADDR, HB_B_ADDR, WITNESS, WITNESS_ADDR, wait::wait_until,
    },
    require_privileged,
};

#[test]
fn root_pair_lab_wires_and_cuts() {
    if !require_privileged("root_pair_lab_wires_and_cuts") {
        return;
    }
    let lab = Lab::pair(2).expect("pair lab");
    lab.ping(DIRECTOR_A, HB_B_ADDR).expect("heartbeat link");
    lab.ping(DIRECTOR_A, DIRECTOR_B_ADDR)
        .expect("service network");
    lab.ping(DIRECTOR_B, WITNESS_ADDR).expect("witness");
    assert!(lab.host(WITNESS).is_ok());
    lab.set_link(DIRECTOR_A, "hb0", false).unwrap();
    assert!(
        lab.ping(DIRECTOR_A, HB_B_ADDR).is_err(),
        "heartbeat link cut"
    );
    lab.ping(DIRECTOR_A, DIRECTOR_B_ADDR)
        .expect("service network still up");
    lab.set_link(DIRECTOR_A, "hb0", true).unwrap();
    // The link comes back (allow the kernel a moment for carrier; a ping
    // that fails takes up to 3 s: about 20 tries, as before).
    assert!(
        wait_until(Duration::from_secs(60), Duration::from_millis(100), || {
            lab.ping(DIRECTOR_A, HB_B_ADDR).is_ok()
        }),
        "heartbeat link not repaired"
    );
}
